"""Pair images for the VQGAN: decoded from the clean pairs Parquet, resized to the model's
resolution, split into training and held-out sets by a stable hash of the record id."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from m6_pipeline.data.parquet_stream import is_held_out, parquet_batches
from m6_pipeline.features.patches import ImageDecodeError, decode_image

log = logging.getLogger(__name__)


def load_pair_images(
    pairs_dir: Path, resolution: int, holdout_fraction: float, max_train: int, max_holdout: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(train [n, r, r, 3] uint8, holdout [m, r, r, 3] uint8, ids of undecodable records).
    The corpus stage already dropped undecodable images; any that still fail are returned,
    not hidden."""
    train: list[np.ndarray] = []
    holdout: list[np.ndarray] = []
    failed: list[str] = []
    for batch in parquet_batches(pairs_dir, ["id", "image"], batch_size=512):
        for record_id, png in zip(batch.column("id").to_pylist(), batch.column("image").to_pylist()):
            held = is_held_out(record_id, holdout_fraction)
            target, limit = (holdout, max_holdout) if held else (train, max_train)
            if len(target) >= limit:
                continue
            try:
                target.append(decode_image(png, resolution, record_id))
            except ImageDecodeError as error:
                log.warning("%s", error)
                failed.append(record_id)
        if len(train) >= max_train and len(holdout) >= max_holdout:
            break
    if (max_train and not train) or (max_holdout and not holdout):
        raise ValueError(
            f"vqgan: {len(train)} training and {len(holdout)} held-out images under {pairs_dir}; "
            "run the corpus stage (`kedro run --pipeline=corpus`) or lower holdout_fraction"
        )
    empty = np.zeros((0, resolution, resolution, 3), dtype=np.uint8)
    return (np.stack(train) if train else empty), (np.stack(holdout) if holdout else empty), failed


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [b, r, r, 3] -> float [b, 3, r, r] in [-1, 1]."""
    images = torch.as_tensor(images)
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [b, 3, r, r] in [-1, 1] -> uint8 [b, r, r, 3]."""
    pixels = ((images.detach().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()


def load_images_by_id(pairs_dir: Path, ids: list[str], resolution: int) -> np.ndarray:
    """The pair images of `ids`, in that order, as uint8 [n, r, r, 3]; a missing id is an error."""
    wanted = set(ids)
    found: dict[str, np.ndarray] = {}
    for batch in parquet_batches(pairs_dir, ["id", "image"], batch_size=512):
        for record_id, png in zip(batch.column("id").to_pylist(), batch.column("image").to_pylist()):
            if record_id in wanted:
                found[record_id] = decode_image(png, resolution, record_id)
        if len(found) == len(wanted):
            break
    missing = [i for i in ids if i not in found]
    if missing:
        raise KeyError(f"{len(missing)} ids not in {pairs_dir} (first: {missing[0]!r}); re-run the vqgan pipeline")
    return np.stack([found[i] for i in ids])
