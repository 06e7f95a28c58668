"""The finetuning pipelines (§4.2, 4.3, 4.6), one per task from one factory: examples, the
pretrained and the baseline variant finetuned side by side, then the test-split metrics.
Datasets are namespaced by pipeline (`finetune_vqa.task_metrics`, ...; catalog_finetune.yml)."""

from kedro.pipeline import Node, Pipeline

from pipelines.finetune_tasks import nodes

EXAMPLE_INPUTS = {
    "vqa": ["patch_features_manifest", "patch_extractor", "params:features"],
    "caption": ["patch_features_manifest"],
    "itm": ["patch_features_manifest"],
}
BUILDERS = {"vqa": nodes.vqa_examples, "caption": nodes.caption_task_examples, "itm": nodes.itm_task_examples}


def create_pipeline(task: str) -> Pipeline:
    ns = f"finetune_{task}"
    data = [f"{ns}.job", f"{ns}.task_examples", f"{ns}.extra_features", "tokenizer", "patch_features_manifest"]
    return Pipeline([
        Node(nodes.parse_job(task), [f"params:{ns}", "pretrain_base.model_card"], f"{ns}.job",
             name=f"parse_{task}_job"),
        Node(BUILDERS[task], [f"{ns}.job", *EXAMPLE_INPUTS[task]], [f"{ns}.task_examples", f"{ns}.extra_features"],
             name=f"{task}_examples"),
        *[
            Node(nodes.finetune(variant), data, [f"{ns}.card_{variant}", f"{ns}.training_{variant}"],
                 name=f"{ns}_{variant}")
            for variant in ("pretrained", "baseline")
        ],
        Node(nodes.evaluate(task),
             [*data, f"{ns}.card_pretrained", f"{ns}.card_baseline", f"{ns}.training_pretrained",
              f"{ns}.training_baseline"],
             [f"{ns}.task_metrics", f"{ns}.predictions"], name=f"evaluate_{task}"),
    ])
