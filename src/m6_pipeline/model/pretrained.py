"""A trained M6 on disk: its weights, `m6_config.json` and `model_card.json` (special token ids,
tokenizer path, training run). What later stages, the notebooks and the app load.

The weights are one `model.safetensors` (dense models, and MoE exports from before the sharded
form), or an MoE model's expert-sharded form (`model.safetensors.index.json`, the dense file and
one file per expert shard; model/sharded_weights.py), which loads at any expert-parallel size.

An export may live at a URI (`s3://bucket/models/m6`; m6_pipeline.storage): it is written
locally and uploaded, and loading downloads it into a temporary directory first. The stages that
read an export's files themselves (finetuning, prompting) take `local_model_dir`: a copy kept on
this machine and downloaded again only when the export changes."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.moe import ExpertParallel
from m6_pipeline.model.sharded_weights import DENSE_FILE, EXPERT_FILES, INDEX, index_files, load_weights
from m6_pipeline.storage import Location, is_uri, location

WEIGHTS, CONFIG, CARD = "model.safetensors", "m6_config.json", "model_card.json"
# where local_model_dir keeps its copies of exports at a URI (one folder per URI)
REMOTE_COPIES = Path("data/06_models/remote")


def weights_path(directory: Path) -> Path:
    """The weights of the export in `directory`: its expert-sharded index if there is one, else
    the single file (which may be missing). Both at once is refused: one is stale."""
    directory = Path(directory)
    index, single = directory / INDEX, directory / WEIGHTS
    if index.exists() and single.exists():
        raise ValueError(
            f"{directory} holds both {WEIGHTS} and {INDEX}: one is left from an older export; "
            "export the model again (export_pretrained clears the other form)"
        )
    return index if index.exists() else single


def weight_files(weights: Path) -> list[Path]:
    """Every file of the weights `weights_path` named: the single file, or the index, the dense
    file and each expert shard."""
    weights = Path(weights)
    return index_files(weights) if weights.name == INDEX else [weights]


def _weight_entries(directory):
    """Every name an export's weights may have in `directory` (a Path or a Location): both forms,
    so that writing one clears the other and fetching finds whichever is there."""
    return [directory / WEIGHTS, directory / INDEX, directory / DENSE_FILE, *directory.glob(EXPERT_FILES)]


def has_weights(directory: Location) -> bool:
    """Whether a local or remote directory holds weights for inference, in either form."""
    return (directory / INDEX).is_file() or (directory / WEIGHTS).is_file()


def fetch_weights(directory: Location, into: Path) -> Path:
    """`weights_path` of `directory` on this machine: itself where it is local, else its weight
    files (not the optimizer states beside them) downloaded into `into`."""
    if directory.is_local:
        return weights_path(directory.local_path())
    for file in _weight_entries(directory):
        if file.is_file():
            file.download_to(Path(into) / file.name)
    return weights_path(Path(into))


def local_model_dir(model_dir: str | Path, copies: Path = REMOTE_COPIES) -> Path:
    """An exported model's directory on this machine: a local path as it is; an export at a URI
    (conf/cluster's model_dir) downloaded into `copies`/<digest of the URI>, its weights, config
    and card. The copy is downloaded again only when the export's files changed (name, size,
    last-modified), so that a finetuning run's input identity, and its resume, hold across
    re-runs."""
    if not is_uri(str(model_dir)):
        return Path(model_dir)
    source = location(str(model_dir))
    if not has_weights(source):
        raise FileNotFoundError(f"no trained M6 at {model_dir}; run `kedro run --env=cluster "
                                "--pipeline=pretrain_base` (or pretrain_10b / pretrain_100b) first")
    files = [f for f in (*_weight_entries(source), source / CONFIG, source / CARD) if f.is_file()]
    listing = "\n".join([source.uri, *(f"{f.name}\t{f.size()}\t{f.mtime_ns()}" for f in files)])
    target = Path(copies) / hashlib.sha256(source.uri.encode()).hexdigest()[:16]
    stamp = target / ".source"
    if stamp.is_file() and stamp.read_text() == listing:
        return target
    shutil.rmtree(target, ignore_errors=True)
    for file in files:
        file.download_to(target / file.name)
    stamp.write_text(listing)
    return target


def export_pretrained(weights: Path, config: M6Config, card: dict, model_dir: str | Path) -> dict:
    """Copy the final weights (a single file, or an expert-sharded index with its files) beside
    their config and card; returns the card. `model_dir` may be a URI (written, then uploaded)."""
    if is_uri(str(model_dir)):
        return _export_to_uri(weights, config, card, location(str(model_dir)))
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    files = weight_files(weights)
    sources = {path.resolve() for path in files}
    for stale in _weight_entries(model_dir):
        if stale.resolve() not in sources:  # the other form, or shards of another export
            stale.unlink(missing_ok=True)
    for path in files:
        target = model_dir / (WEIGHTS if len(files) == 1 else path.name)
        if target.resolve() != path.resolve():
            shutil.copyfile(path, target)
    (model_dir / CONFIG).write_text(config.model_dump_json(indent=1))
    stored = WEIGHTS if len(files) == 1 else INDEX
    card = {**card, "model_dir": str(model_dir), "weights": stored, "config": CONFIG}
    (model_dir / CARD).write_text(json.dumps(card, indent=1, ensure_ascii=False))
    return card


def _export_to_uri(weights: Path, config: M6Config, card: dict, target: Location) -> dict:
    with tempfile.TemporaryDirectory(prefix="m6-export-") as staging:
        card = export_pretrained(weights, config, card, Path(staging))
        for stale in _weight_entries(target):
            stale.delete()  # the other form, or shards of another export
        target.upload_from(Path(staging))
    card = {**card, "model_dir": target.uri}
    (target / CARD).write_text(json.dumps(card, indent=1, ensure_ascii=False))
    return card


def load_config(model_dir: Path) -> M6Config:
    """The architecture of a trained M6, without loading its weights."""
    model_dir = Path(model_dir)
    if not (model_dir / CONFIG).exists():
        raise FileNotFoundError(
            f"no trained M6 in {model_dir}; run `kedro run --pipeline=pretrain_base` "
            "(or pretrain_10b / pretrain_100b) first"
        )
    return M6Config.model_validate_json((model_dir / CONFIG).read_text())


def load_pretrained(
    model_dir: str | Path, *, expert_parallel: ExpertParallel | None = None, **config_updates: object
) -> tuple[M6Model, dict]:
    """The model in eval mode and its card. A missing directory says which pipeline makes it.

    `expert_parallel`: the group an MoE model's experts are sharded over (None: all experts in
    this process); each rank reads only its experts. `config_updates` adapt the architecture for
    finetuning (e.g. `n_image_codes=512` adds the code embedding and output layer of
    text-to-image, `dropout=0.1`): every pretrained weight must load, and only the parameters
    the updates add may stay at their initialisation. A URI is downloaded first."""
    if is_uri(str(model_dir)):
        with tempfile.TemporaryDirectory(prefix="m6-model-") as staging:
            local = location(str(model_dir)).download_to(Path(staging) / "model")
            return load_pretrained(local, expert_parallel=expert_parallel, **config_updates)
    model_dir = Path(model_dir)
    weights = weights_path(model_dir)
    if not weights.exists():
        raise FileNotFoundError(
            f"no trained M6 in {model_dir}; run `kedro run --pipeline=pretrain_base` "
            "(or pretrain_10b / pretrain_100b) first"
        )
    config = M6Config.model_validate_json((model_dir / CONFIG).read_text())
    config = config.model_copy(update=config_updates) if config_updates else config
    config = M6Config.model_validate(config.model_dump())  # re-validate the updated fields
    model = M6Model(config, expert_parallel=expert_parallel)
    missing, unexpected = load_weights(model, weights)
    added = {"embeddings.code.weight", "code_head.weight"}
    if unexpected or set(missing) - added:
        raise ValueError(
            f"{weights} does not fit the model of {model_dir / CONFIG} with "
            f"{config_updates}: missing {sorted(set(missing) - added)}, unexpected {sorted(unexpected)}"
        )
    card = json.loads((model_dir / CARD).read_text())
    return model.eval(), card
