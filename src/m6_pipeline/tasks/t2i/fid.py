"""FID (Heusel et al. 2017) from a local Inception file: the TorchScript `inception-2015-12-05.pt`
that StyleGAN2-ADA and clean-fid use (the TensorFlow FID network, exported), loaded with
`torch.jit.load`, so neither torchvision nor a download is needed. Its forward takes float
images in [0, 255], resizes them to 299 itself, and `return_features=True` gives the 2048 pool
features. No file, no FID: the report says so instead of inventing a number."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from m6_pipeline.tasks.t2i.classifier import frechet_distance


@torch.no_grad()
def inception_features(model: torch.jit.ScriptModule, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """uint8 images [n, r, r, 3] -> pool features [n, d]."""
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(images[start : start + batch_size]).permute(0, 3, 1, 2).float()
        out.append(model(x, return_features=True).double().cpu())
    return torch.cat(out).numpy()


def fid(weights: Path, real: np.ndarray, generated: np.ndarray) -> float:
    """FID between uint8 image sets, with the Inception network at `weights`."""
    weights = Path(weights)
    if not weights.exists():
        raise FileNotFoundError(
            f"Inception weights {weights} not found: save StyleGAN2-ADA's inception-2015-12-05.pt "
            "there, or set evaluation.inception_weights: null"
        )
    model = torch.jit.load(str(weights), map_location="cpu").eval()
    return frechet_distance(inception_features(model, real), inception_features(model, generated))
