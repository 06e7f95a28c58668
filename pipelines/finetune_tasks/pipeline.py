"""The finetuning pipelines (§4.2, 4.3, 4.6), one template instantiated per task under a
namespace (`finetune_vqa`, `finetune_caption`, `finetune_itm`): examples, the pretrained and the
baseline variant finetuned side by side, then the test-split metrics. Datasets are
`<namespace>.*` (conf/base/catalog_finetune.yml), parameters `params:<namespace>`."""

from kedro.pipeline import Node, Pipeline

from m6_pipeline.tasks.finetune.config import VARIANTS
from pipelines.finetune_tasks import nodes

SHARED = {"tokenizer", "patch_features_manifest", "patch_extractor", "clean_pairs_validation"}
EXAMPLE_INPUTS = {
    # VQA reads the catalogue's clean pairs: their suite's result gates them (validation/gate.py)
    "vqa": ["patch_features_manifest", "patch_extractor", "params:features", "clean_pairs_validation"],
    "caption": ["patch_features_manifest"],
    "itm": ["patch_features_manifest"],
}
BUILDERS = {"vqa": nodes.vqa_examples, "caption": nodes.caption_task_examples, "itm": nodes.itm_task_examples}
DATA = ["job", "task_examples", "extra_features", "tokenizer", "patch_features_manifest"]


def _template(task: str) -> Pipeline:
    return Pipeline([
        Node(nodes.parse_job(task), ["params:task", "pretrained_card"], "job", name="parse_job"),
        Node(BUILDERS[task], ["job", *EXAMPLE_INPUTS[task]], ["task_examples", "extra_features"], name="examples"),
        *[Node(nodes.finetune(variant), DATA, [f"card_{variant}", f"training_{variant}"], name=f"finetune_{variant}")
          for variant in VARIANTS],
        Node(nodes.evaluate(task),
             [*DATA, "card_pretrained", "card_baseline", "training_pretrained", "training_baseline"],
             ["task_metrics", "predictions"], name="evaluate"),
    ])


def create_pipeline(task: str) -> Pipeline:
    namespace = f"finetune_{task}"
    return Pipeline(
        _template(task), namespace=namespace,
        inputs={**{name: name for name in SHARED if name in {*DATA, *EXAMPLE_INPUTS[task]}},
                "pretrained_card": "pretrain_base.model_card"},
        parameters={"params:task": f"params:{namespace}", **({"params:features": "params:features"} if task == "vqa" else {})},
        tags=namespace,  # the stage's tag (`kedro run --pipeline=X --tags=X` runs the stage alone)
    )
