"""The project's pipelines. `__default__` chains every stage at laptop scale.

A pretraining pipeline includes the stages upstream of it only when their outputs are missing:
`kedro run --pipeline=pretrain_base` on a fresh clone makes the corpus, the tokenizer and the
patch features; on a machine that has them it reuses them. (`dvc repro` is the tool that also
notices changed inputs and rebuilds exactly what they affect.)
"""

from pathlib import Path

from kedro.pipeline import Pipeline

from pipelines.corpus.pipeline import create_pipeline as corpus
from pipelines.evaluate.pipeline import create_pipeline as evaluate
from pipelines.features.pipeline import create_pipeline as features
from pipelines.finetune_t2i.pipeline import create_pipeline as finetune_t2i
from pipelines.finetune_tasks.pipeline import create_pipeline as finetune_task
from pipelines.pretrain.pipeline import create_pipeline as pretrain
from pipelines.prompting.pipeline import create_pipeline as prompting
from pipelines.tokenizer.pipeline import create_pipeline as tokenizer
from pipelines.vqgan.pipeline import create_pipeline as vqgan

# the files whose presence means a stage's outputs exist (written last by each stage)
STAGE_OUTPUTS = {
    "corpus": ["data/08_reporting/corpus_report.json"],
    "tokenizer": ["data/04_feature/tokenizer/tokenizer.json"],
    "features": ["data/04_feature/patch_features/_manifest.json"],
    "vqgan": ["data/04_feature/image_codes/_manifest.json"],
    "pretrain_base": ["data/06_models/pretrain_base/model_card.json"],
}


def _missing_upstream(stages: dict[str, Pipeline]) -> Pipeline:
    missing = Pipeline([])
    for name, pipe in stages.items():
        if not all(Path(p).exists() for p in STAGE_OUTPUTS[name]):
            missing += pipe
    return missing


# what `evaluate` reads of a task beyond its metrics (the human batch shows generated images)
EVALUATED_OUTPUTS = {"t2i": ["data/07_model_output/finetune_t2i/predictions.json",
                             "data/07_model_output/finetune_t2i/images.parquet"]}


def _missing_downstream_tasks(tasks: dict[str, Pipeline], upstream: Pipeline) -> Pipeline:
    """The task pipelines whose metrics are missing (with what they need), for `evaluate`."""
    missing = Pipeline([])
    for name, pipe in tasks.items():
        needed = [f"data/08_reporting/{name}/metrics.json", *EVALUATED_OUTPUTS.get(name, [])]
        if not all(Path(p).exists() for p in needed):  # t2i: data/08_reporting/t2i
            missing += pipe
    return upstream + missing if missing.nodes else missing


def register_pipelines() -> dict[str, Pipeline]:
    stages = {"corpus": corpus(), "tokenizer": tokenizer(), "features": features()}
    upstream = _missing_upstream(stages)
    image_codes = _missing_upstream({"corpus": stages["corpus"]}) + vqgan()
    pretrain_base, pretrain_100b = pretrain("pretrain_base"), pretrain("pretrain_100b")
    t2i_upstream = _missing_upstream({**stages, "pretrain_base": pretrain_base, "vqgan": vqgan()})
    task_upstream = _missing_upstream({**stages, "pretrain_base": pretrain_base})
    tasks = {f"finetune_{task}": finetune_task(task) for task in ("vqa", "caption", "itm")}
    tasks |= {kind: prompting(kind) for kind in ("qa", "poem")}
    return {
        **stages,
        "vqgan": image_codes,
        "pretrain_base": upstream + pretrain_base,
        "pretrain_10b": upstream + pretrain("pretrain_10b"),
        "pretrain_100b": upstream + pretrain_100b,
        "finetune_t2i": t2i_upstream + finetune_t2i(),
        **{name: task_upstream + pipe for name, pipe in tasks.items()},
        "evaluate": _missing_downstream_tasks({**tasks, "t2i": t2i_upstream + finetune_t2i()}, task_upstream)
        + evaluate(),
        # every stage once at laptop scale: dense and MoE pretraining (10B is the dense stage at
        # another size; it runs by name), the VQGAN and text-to-image
        "__default__": stages["corpus"] + stages["tokenizer"] + stages["features"] + pretrain_base
        + pretrain_100b + vqgan() + finetune_t2i() + sum(tasks.values(), Pipeline([]))
        + evaluate(),
    }
