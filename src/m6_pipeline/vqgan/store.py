"""A trained VQGAN on disk: `vqgan.safetensors` and `vqgan_config.json` in one directory, which
the finetune_t2i pipeline, the notebooks and the app load."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_model, save_model

from m6_pipeline.vqgan.config import VQGANConfig
from m6_pipeline.vqgan.model import VQGAN

WEIGHTS, CONFIG = "vqgan.safetensors", "vqgan_config.json"


def save_vqgan(model: VQGAN, directory: Path) -> dict:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(model.config.model_dump_json(indent=1))
    return {"model_dir": str(directory), "weights": WEIGHTS, "config": CONFIG}


def load_vqgan(directory: Path) -> VQGAN:
    """The VQGAN in eval mode; a missing directory says which pipeline makes it."""
    directory = Path(directory)
    if not (directory / WEIGHTS).exists():
        raise FileNotFoundError(f"no trained VQGAN in {directory}; run `kedro run --pipeline=vqgan` first")
    model = VQGAN(VQGANConfig.model_validate_json((directory / CONFIG).read_text()))
    load_model(model, str(directory / WEIGHTS))
    return model.eval()
