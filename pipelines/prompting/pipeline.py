"""The prompting pipelines `qa` and `poem`: no finetuning, the pretrained M6 prompted as §4.4
and §4.5 do, beside a token n-gram LM trained on the same pretraining text. One template per
kind under its namespace."""

from kedro.pipeline import Node, Pipeline

from pipelines.prompting import nodes


def create_pipeline(kind: str) -> Pipeline:
    run = {"qa": nodes.answer, "poem": nodes.write_poems}[kind]
    template = Pipeline([
        Node(nodes.parse_job(kind), ["params:prompting", "pretrained_card"], "job", name="parse_job"),
        Node(nodes.train_baseline, ["job", "tokenizer", "shards_summary"], "baseline", name="train_baseline"),
        Node(run, ["job", "tokenizer", "corpus_lm", "baseline"], ["task_metrics", "predictions"], name="generate"),
    ])
    return Pipeline(template, namespace=kind,
                    inputs={"tokenizer": "tokenizer", "corpus_lm": "corpus_lm", "pretrained_card": "pretrain_base.model_card",
                            "shards_summary": "pretrain_base.token_shards"},
                    parameters={"params:prompting": f"params:{kind}"}, tags=kind)  # the stage's tag
