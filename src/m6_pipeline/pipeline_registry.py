"""The project's pipelines, the same on every machine. `__default__` chains every stage at
laptop scale; every other pipeline is its stage with all it needs upstream:

- `kedro run --pipeline=pretrain_base` makes the corpus, tokenizer and patch features, then
  pretrains; add `--only-missing-outputs` to skip the stages whose outputs are already there;
- `kedro run --pipeline=pretrain_base --tags=pretrain_base` runs the stage alone (each stage's
  nodes carry its name as a tag): what each `dvc repro` stage runs, DVC deciding which stages'
  inputs changed.
"""

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


def register_pipelines() -> dict[str, Pipeline]:
    data = corpus() + tokenizer() + features()  # what pretraining and every task read
    pretrain_base, pretrain_100b = pretrain("pretrain_base"), pretrain("pretrain_100b")
    tasks = {f"finetune_{task}": finetune_task(task) for task in ("vqa", "caption", "itm")}
    tasks |= {kind: prompting(kind) for kind in ("qa", "poem")}
    text_to_image = vqgan() + finetune_t2i()
    evaluated = data + pretrain_base + text_to_image + sum(tasks.values(), Pipeline([])) + evaluate()
    return {
        "corpus": corpus(),
        "tokenizer": corpus() + tokenizer(),
        "features": corpus() + features(),
        "vqgan": corpus() + vqgan(),
        "pretrain_base": data + pretrain_base,
        "pretrain_10b": data + pretrain("pretrain_10b"),
        "pretrain_100b": data + pretrain_100b,
        "finetune_t2i": data + pretrain_base + text_to_image,
        **{name: data + pretrain_base + pipe for name, pipe in tasks.items()},
        "evaluate": evaluated,
        # every stage once at laptop scale: dense and MoE pretraining (10B is the dense stage at
        # another size; it runs by name), the VQGAN and text-to-image, the tasks, the evaluation
        "__default__": evaluated + pretrain_100b,
    }
