"""The prompting pipelines `qa` and `poem`: no finetuning, the pretrained M6 prompted as §4.4
and §4.5 do, beside the non-pretrained baseline."""

from kedro.pipeline import Node, Pipeline

from pipelines.prompting import nodes


def create_pipeline(kind: str) -> Pipeline:
    run = {"qa": nodes.answer, "poem": nodes.write_poems}[kind]
    return Pipeline([
        Node(nodes.parse_job(kind), [f"params:{kind}", "pretrain_base.model_card"], f"{kind}.job",
             name=f"parse_{kind}_job"),
        Node(run, [f"{kind}.job", "tokenizer", "corpus_lm"], [f"{kind}.task_metrics", f"{kind}.predictions"],
             name=kind),
    ])
