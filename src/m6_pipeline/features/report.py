"""For people and machines: what the extracted features look like, and a picture of held-out
images cut into their patches beside the autoencoder's reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.features.extract import decode_patch_features
from m6_pipeline.features.patches import join_patches


def feature_statistics(out_dir: str | Path, max_rows: int = 4096) -> dict:
    """Statistics of the features of the first `max_rows` pairs: norms, per-dimension spread
    and the share of dimensions that never vary (dead features)."""
    features = []
    for path in parquet_files(out_dir):
        rows = pq.read_table(path).slice(0, max_rows - len(features)).to_pydict()
        features += [
            decode_patch_features(b, n, d).astype(np.float32)
            for b, n, d in zip(
                rows["patch_features"], rows["n_patches"], rows["d_feature"], strict=True
            )
        ]
        if len(features) >= max_rows:
            break
    features = np.stack(features)
    flat = features.reshape(-1, features.shape[-1])
    std = flat.std(axis=0)
    return {
        "sampled_pairs": len(features),
        "mean_norm": float(np.linalg.norm(flat, axis=1).mean()),
        "mean_abs": float(np.abs(flat).mean()),
        "max_abs": float(np.abs(flat).max()),
        "dimension_std": {
            "min": float(std.min()),
            "median": float(np.median(std)),
            "max": float(std.max()),
        },
        "dead_dimension_share": float((std < 1e-4).mean()),
    }


@torch.no_grad()
def patches_figure(patches: torch.Tensor, grid: int, model=None, n_images: int = 6):
    """uint8 patches [n_images * grid², 3, p, p] of held-out images: top row the images with
    the patch grid drawn, bottom row (autoencoder only) each patch reconstructed alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_image = grid * grid
    n_images = min(n_images, len(patches) // per_image)
    images = patches[: n_images * per_image].float() / 255
    rows = [("image, patch grid", images)]
    if model is not None and hasattr(model, "decoder"):
        rows.append(("reconstructed patches", model.eval()(images)))
    fig, axes = plt.subplots(
        len(rows), n_images, figsize=(1.6 * n_images, 1.7 * len(rows)), squeeze=False
    )
    for r, (label, row) in enumerate(rows):
        joined = join_patches(row.reshape(n_images, per_image, *row.shape[1:]), grid)
        for c in range(n_images):
            ax = axes[r][c]
            ax.imshow(joined[c].permute(1, 2, 0).clamp(0, 1).numpy())
            size = joined.shape[-1]
            for k in range(1, grid):
                ax.axhline(k * size / grid - 0.5, color="white", lw=0.5, alpha=0.6)
                ax.axvline(k * size / grid - 0.5, color="white", lw=0.5, alpha=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.suptitle("held-out pair images: patches in row-major order", fontsize=9)
    fig.tight_layout()
    return fig
