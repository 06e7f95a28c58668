"""Patch features by image id, read from the `features` pipeline's Parquet (and from any
extra images a task embeds itself, e.g. VQA's multi-product scenes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.features.extract import decode_patch_features


def load_patch_features(features_dir: str | Path, ids: set[str] | None = None) -> dict[str, np.ndarray]:
    """{id: float16 [n_patches, d_feature]} for `ids` (every row when None)."""
    out: dict[str, np.ndarray] = {}
    files = parquet_files(features_dir)
    if not files:
        raise FileNotFoundError(f"no patch features under {features_dir}: run `kedro run --pipeline=features`")
    for path in files:
        table = pq.read_table(path, columns=["id", "n_patches", "d_feature", "patch_features"])
        for record_id, n, d, binary in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            if ids is None or record_id in ids:
                out[record_id] = decode_patch_features(binary, n, d)
    if ids is not None and (missing := ids - out.keys()):
        raise KeyError(f"{len(missing)} images have no patch features, e.g. {sorted(missing)[:3]}")
    return out
