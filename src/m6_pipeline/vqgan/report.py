"""The VQGAN stage's report: held-out reconstructions beside their originals, training curves,
and the metrics (PSNR/SSIM, codebook health) in one JSON."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from m6_pipeline.vqgan.images import to_model_range, to_uint8  # noqa: E402
from m6_pipeline.vqgan.model import VQGAN  # noqa: E402


@torch.no_grad()
def reconstruction_grid(model: VQGAN, images: np.ndarray) -> plt.Figure:
    """Originals (top row) over their reconstructions (bottom row)."""
    reconstructions = to_uint8(model.decode_codes(model.encode(to_model_range(images))))
    n = len(images)
    figure, axes = plt.subplots(2, n, figsize=(1.3 * n, 2.9))
    for i in range(n):
        for row, image in enumerate((images[i], reconstructions[i])):
            axes[row, i].imshow(image, interpolation="nearest")
            axes[row, i].axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title(f"VQGAN ({model.config.grid}x{model.config.grid} codes)", fontsize=8, loc="left")
    figure.tight_layout()
    return figure


def training_curves(history: list[dict]) -> plt.Figure:
    steps = [row["step"] for row in history]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    axes[0].plot(steps, [r["reconstruction_l1"] for r in history], label="L1")
    axes[0].plot(steps, [r["perceptual"] for r in history], label="perceptual")
    axes[0].set_title("reconstruction")
    axes[0].legend()
    axes[1].plot(steps, [r["generator_gan"] for r in history], label="generator (hinge)")
    axes[1].plot(steps, [r["discriminator"] for r in history], label="discriminator")
    axes[1].set_title("adversarial")
    axes[1].legend()
    axes[2].plot(steps, [r["codebook_usage"] for r in history], label="usage (share of codes)")
    twin = axes[2].twinx()
    twin.plot(steps, [r["codebook_perplexity"] for r in history], color="tab:red", label="perplexity")
    axes[2].set_title("codebook")
    axes[2].legend(loc="lower left")
    twin.legend(loc="lower right")
    for ax in axes:
        ax.set_xlabel("step")
    figure.tight_layout()
    return figure
