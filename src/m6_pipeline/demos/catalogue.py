"""A few catalogue images to try the image demos on, read from the head of the clean pairs
Parquet (PNG bytes the corpus stage has already decoded safely)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from m6_pipeline.data.parquet_stream import parquet_batches
from m6_pipeline.demos.models import MissingCheckpoint


@dataclass(frozen=True)
class CatalogueImage:
    id: str
    text: str  # the pair's own text: the reference a caption can be compared with
    png: bytes


def catalogue_images(pairs_dir: Path, n: int) -> list[CatalogueImage]:
    """The first `n` pairs under `pairs_dir` (one record batch is read)."""
    try:
        batch = next(parquet_batches(pairs_dir, ["id", "text", "image"], n), None)
    except FileNotFoundError:
        raise MissingCheckpoint(pairs_dir, "clean image-text pairs", "corpus") from None
    if batch is None:
        return []
    columns = (batch.column(name).to_pylist() for name in ("id", "text", "image"))
    return [CatalogueImage(*row) for row in zip(*columns)]
