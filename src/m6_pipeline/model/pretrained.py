"""A trained M6 on disk: `model.safetensors` (tied weights stored once), `m6_config.json` and
`model_card.json` (special token ids, tokenizer path, training run). What later stages, the
notebooks and the app load."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from safetensors.torch import load_model

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.m6 import M6Model

WEIGHTS, CONFIG, CARD = "model.safetensors", "m6_config.json", "model_card.json"


def export_pretrained(weights: Path, config: M6Config, card: dict, model_dir: Path) -> dict:
    """Copy the final weights beside their config and card; returns the card."""
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, model_dir / WEIGHTS)
    (model_dir / CONFIG).write_text(config.model_dump_json(indent=1))
    card = {**card, "model_dir": str(model_dir), "weights": WEIGHTS, "config": CONFIG}
    (model_dir / CARD).write_text(json.dumps(card, indent=1, ensure_ascii=False))
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


def load_pretrained(model_dir: Path, **config_updates: object) -> tuple[M6Model, dict]:
    """The model in eval mode and its card. A missing directory says which pipeline makes it.

    `config_updates` adapt the architecture for finetuning (e.g. `n_image_codes=512` adds the
    code embedding and output layer of text-to-image, `dropout=0.1`): every pretrained weight
    must load, and only the parameters the updates add may stay at their initialisation."""
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).exists():
        raise FileNotFoundError(
            f"no trained M6 in {model_dir}; run `kedro run --pipeline=pretrain_base` "
            "(or pretrain_10b / pretrain_100b) first"
        )
    config = M6Config.model_validate_json((model_dir / CONFIG).read_text())
    config = config.model_copy(update=config_updates) if config_updates else config
    config = M6Config.model_validate(config.model_dump())  # re-validate the updated fields
    model = M6Model(config)
    missing, unexpected = load_model(model, str(model_dir / WEIGHTS), strict=False)
    added = {"embeddings.code.weight", "code_head.weight"}
    if unexpected or set(missing) - added:
        raise ValueError(
            f"{model_dir / WEIGHTS} does not fit the model of {model_dir / CONFIG} with "
            f"{config_updates}: missing {sorted(set(missing) - added)}, unexpected {sorted(unexpected)}"
        )
    card = json.loads((model_dir / CARD).read_text())
    return model.eval(), card
