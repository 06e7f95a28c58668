"""The two models every task compares: the pretrained M6, and the same architecture from its
initialisation (the paper's non-pretrained baseline)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.pretrained import CARD, CONFIG, export_pretrained, load_pretrained, local_model_dir
from m6_pipeline.tasks.finetune.config import Variant


def pretrained_model_dir(configured: str | Path | None, pretrain_model_card: dict) -> Path:
    """The pretrained M6 a stage starts from, on this machine: the `pretrained_dir` its parameters
    name, else the pretraining stage's card's; an export at a URI is copied here (local_model_dir)."""
    return local_model_dir(configured if configured is not None else pretrain_model_card["model_dir"])


def initial_model(pretrained_dir: Path, variant: Variant, dropout: float, seed: int) -> tuple[M6Model, dict]:
    """The model a finetuning run starts from, and the pretrained card (for the baseline too:
    it names the tokenizer and special tokens both share)."""
    if variant == "pretrained":
        return load_pretrained(pretrained_dir, dropout=dropout)
    if not (Path(pretrained_dir) / CARD).exists():
        load_pretrained(pretrained_dir)  # raises with the pipeline to run
    card = json.loads((Path(pretrained_dir) / CARD).read_text())
    config = M6Config.model_validate_json((Path(pretrained_dir) / CONFIG).read_text())
    config = M6Config.model_validate({**config.model_dump(), "dropout": dropout})
    torch.manual_seed(seed)
    return M6Model(config).eval(), card


def export_finetuned(model: M6Model, model_dir: Path, card: dict) -> dict:
    """Save the finetuned model (dropout off for inference) as safetensors + config + card."""
    from safetensors.torch import save_model

    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / "finetuned.safetensors"
    save_model(model, str(weights))
    config = model.config.model_copy(update={"dropout": 0.0})
    card = export_pretrained(weights, config, card, model_dir)
    weights.unlink()
    return card

