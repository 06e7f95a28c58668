"""One modular pretraining pipeline, instantiated per model size under a namespace
(`pretrain_base`, `pretrain_10b`): its parameters are `<namespace>.pretrain`, its datasets
`<namespace>.*` (see conf/base/catalog_pretrain.yml). The tokenizer and the patch features are
shared inputs made by their own pipelines."""

from kedro.pipeline import Node, Pipeline

from pipelines.pretrain import nodes

SHARED_INPUTS = {"tokenizer", "patch_features_manifest", "clean_text_validation"}


def _template() -> Pipeline:
    return Pipeline([
        Node(nodes.parse_parameters, "params:pretrain", "pretrain_parameters", name="parse_parameters"),
        # the clean text's suite result gates the text it tokenizes (m6_pipeline.validation.gate)
        Node(nodes.write_token_shards,
             ["pretrain_parameters", "clean_text_validation", "tokenizer", "patch_features_manifest"],
             "token_shards", name="write_token_shards"),
        Node(nodes.plan_pretraining, ["pretrain_parameters", "tokenizer", "patch_features_manifest"], "plan",
             name="plan_pretraining"),
        Node(nodes.pretrain, ["pretrain_parameters", "tokenizer", "patch_features_manifest", "token_shards", "plan"],
             ["train_state", "model_card"], name="pretrain"),
        Node(nodes.report_pretraining, ["pretrain_parameters", "tokenizer", "train_state", "model_card"],
             ["train_summary", "loss_curve", "samples"], name="report_pretraining"),
    ])


def create_pipeline(namespace: str) -> Pipeline:
    # the tag names the stage as the other stages' tags do (`kedro run --pipeline=X --tags=X`)
    return Pipeline(_template(), namespace=namespace, inputs=SHARED_INPUTS, tags=namespace)
