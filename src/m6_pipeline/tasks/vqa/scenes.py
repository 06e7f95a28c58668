"""Scenes of two or three catalogue products side by side on a white canvas, embedded by the
same patch extractor as every pair image: the images that number and relation questions ask
about (the catalogue itself shows one product per image)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from m6_pipeline.data.parquet_stream import parquet_batches
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.extract import embed_images
from m6_pipeline.features.patches import PatchExtractor
from m6_pipeline.tasks.records import PairRecord


def load_pngs(pairs_dir, ids: set[str]) -> dict[str, bytes]:
    """{id: encoded image} for `ids` from the clean pairs Parquet."""
    out = {}
    for batch in parquet_batches(pairs_dir, ["id", "image"], batch_size=1024):
        for record_id, png in zip(batch.column("id").to_pylist(), batch.column("image").to_pylist()):
            if record_id in ids:
                out[record_id] = png
    if missing := ids - out.keys():
        raise KeyError(f"{len(missing)} scene products are not in {pairs_dir}, e.g. {sorted(missing)[:3]}")
    return out


def compose(pngs: list[bytes], side: int) -> bytes:
    """Products left to right, each scaled into an equal column of a white square canvas."""
    canvas = Image.new("RGB", (side, side), (255, 255, 255))
    width = side // len(pngs)
    left = (side - width * len(pngs)) // 2
    for k, png in enumerate(pngs):
        with Image.open(io.BytesIO(png)) as image:
            item = image.convert("RGB").resize((width, width), Image.BICUBIC)
        canvas.paste(item, (left + k * width, (side - width) // 2))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def draw_scenes(
    products: list[PairRecord], n_scenes: int, rng: np.random.Generator, prefix: str
) -> list[tuple[str, list[PairRecord]]]:
    """n_scenes (id, products) of 1-3 distinct products drawn from `products`."""
    scenes = []
    for k in range(n_scenes):
        count = int(rng.integers(1, 4))
        picks = rng.choice(len(products), size=count, replace=False)
        scenes.append((f"scene/{prefix}/{k:05d}", [products[i] for i in picks]))
    return scenes


def embed_scenes(
    scenes: list[tuple[str, list[PairRecord]]], pairs_dir, extractor: PatchExtractor,
    config: FeaturesConfig, canvas: int = 128,
) -> dict[str, np.ndarray]:
    """{scene id: patch features} of the composed scenes."""
    pngs = load_pngs(pairs_dir, {p.id for _, products in scenes for p in products})
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(scenes), 256):
        chunk = scenes[start : start + 256]
        images = [compose([pngs[p.id] for p in products], canvas) for _, products in chunk]
        ids = [scene_id for scene_id, _ in chunk]
        with config.threads():
            features = embed_images(images, ids, extractor, config)
        out.update(zip(ids, features))
    return out
