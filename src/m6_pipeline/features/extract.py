"""Patch features of every clean image-text pair, streamed from the pairs Parquet to
`patch_features-NNNNN.parquet` files: one row per pair with its text and its features
[n_patches, d_feature] as float16 bytes (C order, little-endian), patches in row-major order."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from m6_pipeline.data.parquet_stream import parquet_batches, parquet_files
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.patches import PatchExtractor, image_patches

log = logging.getLogger(__name__)

FEATURE_DTYPE = np.dtype("<f2")
FILE_PREFIX = "patch_features"
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("text", pa.string()),
        ("n_patches", pa.int32()),
        ("d_feature", pa.int32()),
        ("patch_features", pa.binary()),
    ]
)


def encode_patch_features(features: np.ndarray) -> bytes:
    """[n_patches, d_feature] -> float16 little-endian C-order bytes."""
    return np.ascontiguousarray(features, dtype=FEATURE_DTYPE).tobytes()


def decode_patch_features(binary: bytes, n_patches: int, d_feature: int) -> np.ndarray:
    """The `patch_features` bytes of a row -> float16 array [n_patches, d_feature]."""
    if len(binary) != n_patches * d_feature * FEATURE_DTYPE.itemsize:
        raise ValueError(
            f"patch_features holds {len(binary)} bytes, not {n_patches}x{d_feature} float16"
        )
    return np.frombuffer(binary, dtype=FEATURE_DTYPE).reshape(n_patches, d_feature)


@torch.inference_mode()
def embed_images(
    pngs: list[bytes],
    ids: list[str],
    extractor: PatchExtractor,
    config: FeaturesConfig,
    max_patches: int = 2048,
) -> np.ndarray:
    """Encoded images -> float16 features [batch, n_patches, d_feature] (row-major patches)."""
    patches = image_patches(pngs, ids, config.image_size, config.grid)
    flat = patches.flatten(0, 1)
    features = torch.cat(
        [extractor.embed(flat[i : i + max_patches]) for i in range(0, len(flat), max_patches)]
    )
    features = features.reshape(len(ids), config.n_patches, -1).numpy().astype(FEATURE_DTYPE)
    if not np.isfinite(features).all():
        bad = [ids[i] for i in np.flatnonzero(~np.isfinite(features).all(axis=(1, 2)))[:5]]
        raise ValueError(f"patch features overflow float16 for pairs {bad}: check the extractor")
    return features


class _RollingWriter:
    """Parquet files of at most `rows_per_file` rows, named `patch_features-00000.parquet`, ..."""

    def __init__(self, directory: Path, rows_per_file: int):
        self.directory, self.rows_per_file = directory, rows_per_file
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_file, self.files = 0, []

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self.writer is None:
                path = self.directory / f"{FILE_PREFIX}-{len(self.files):05d}.parquet"
                self.writer, self.rows_in_file = pq.ParquetWriter(path, SCHEMA), 0
                self.files.append(path.name)
            room = self.rows_per_file - self.rows_in_file
            self.writer.write_table(table.slice(0, room))
            self.rows_in_file += min(room, table.num_rows)
            table = table.slice(room)
            if self.rows_in_file >= self.rows_per_file:
                self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def extract_patch_features(
    pairs_dir: str | Path, extractor: PatchExtractor, config: FeaturesConfig, out_dir: str | Path
) -> dict:
    """Embed every pair under `pairs_dir` into `out_dir` (its old `patch_features-*` files are
    replaced, written first to a staging directory). Returns a summary for the report."""
    pairs_dir, out_dir = Path(pairs_dir), Path(out_dir)
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(pairs_dir))
    staging = out_dir.parent / f".{out_dir.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if isinstance(extractor, torch.nn.Module):
        extractor.eval()
    writer, rows, start = _RollingWriter(staging, config.rows_per_file), 0, time.perf_counter()
    d_feature = None
    with tqdm(total=total, desc="patch features", unit="image", mininterval=5.0) as bar:
        for batch in parquet_batches(
            pairs_dir, ["id", "source", "text", "image"], config.batch_size
        ):
            ids = batch.column("id").to_pylist()
            features = embed_images(batch.column("image").to_pylist(), ids, extractor, config)
            d_feature = features.shape[2]
            writer.write(
                pa.table(
                    {
                        "id": pa.array(ids, pa.string()),
                        "source": batch.column("source").cast(pa.string()),
                        "text": batch.column("text").cast(pa.string()),
                        "n_patches": pa.array(np.full(len(ids), config.n_patches, np.int32)),
                        "d_feature": pa.array(np.full(len(ids), d_feature, np.int32)),
                        "patch_features": pa.array(
                            [encode_patch_features(f) for f in features], pa.binary()
                        ),
                    },
                    schema=SCHEMA,
                )
            )
            rows += len(ids)
            bar.update(len(ids))
    writer.close()
    seconds = time.perf_counter() - start
    if rows != total:
        raise RuntimeError(f"wrote {rows} rows of patch features for {total} pairs")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(f"{FILE_PREFIX}-*.parquet"):
        old.unlink()
    for name in writer.files:
        (staging / name).rename(out_dir / name)
    shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "patch features: %d pairs -> %s in %.1f s (%.0f images/s)",
        rows,
        out_dir,
        seconds,
        rows / max(seconds, 1e-9),
    )
    return {
        "out_dir": str(out_dir),
        "files": writer.files,
        "rows": rows,
        "n_patches": config.n_patches,
        "d_feature": d_feature or config.d_feature,
        "dtype": "float16",
        "seconds": round(seconds, 2),
        "images_per_second": round(rows / max(seconds, 1e-9), 1),
    }
