"""Every clean pair image as a VQGAN code sequence: `image_codes-NNNNN.parquet` (id, source,
text, codes as a row-major list of grid² uint16) beside a `_manifest.json` that later stages
read. Images that fail to decode are listed in the manifest with the reason, never dropped
silently."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from m6_pipeline.data.parquet_stream import parquet_batches, parquet_files
from m6_pipeline.features.patches import ImageDecodeError, decode_image
from m6_pipeline.vqgan.codebook import usage_statistics
from m6_pipeline.vqgan.images import to_model_range
from m6_pipeline.vqgan.model import VQGAN

log = logging.getLogger(__name__)
MANIFEST = "_manifest.json"
CODES_SCHEMA = pa.schema(
    [("id", pa.string()), ("source", pa.string()), ("text", pa.string()), ("codes", pa.list_(pa.uint16()))]
)


def encode_pairs(
    model: VQGAN, pairs_dir: Path, out_dir: Path, batch_size: int = 256, rows_per_file: int = 8192
) -> dict:
    """Encode every pair under `pairs_dir`; returns the manifest (also written to out_dir)."""
    if model.config.codebook_size > 65536:
        raise ValueError("codes are stored as uint16: codebook_size must be <= 65536")
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("image_codes-*.parquet"):
        old.unlink()
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(pairs_dir))
    model.eval()
    resolution, files, failed = model.config.resolution, [], []
    rows: list[pa.Table] = []
    buffered, n_rows = 0, 0
    usage = torch.zeros(model.config.codebook_size, dtype=torch.long)

    def flush() -> None:
        nonlocal rows, buffered
        if rows:
            path = out_dir / f"image_codes-{len(files):05d}.parquet"
            pq.write_table(pa.concat_tables(rows), path)
            files.append(path.name)
            rows, buffered = [], 0

    with tqdm(total=total, desc="encode pair images", mininterval=5) as bar:
        for batch in parquet_batches(pairs_dir, ["id", "source", "text", "image"], batch_size):
            ids, pixels, keep = batch.column("id").to_pylist(), [], []
            for row, (record_id, png) in enumerate(zip(ids, batch.column("image").to_pylist())):
                try:
                    pixels.append(decode_image(png, resolution, record_id))
                    keep.append(row)
                except ImageDecodeError as error:
                    failed.append({"id": record_id, "reason": "image_decode_error", "detail": str(error)})
            bar.update(len(ids))
            if not keep:
                continue
            codes = model.encode(to_model_range(np.stack(pixels))).reshape(len(keep), -1)
            usage += torch.bincount(codes.reshape(-1), minlength=model.config.codebook_size)
            kept = batch.take(pa.array(keep))
            table = pa.table(
                {
                    "id": kept.column("id"),
                    "source": kept.column("source"),
                    "text": kept.column("text"),
                    "codes": pa.array(codes.numpy().astype(np.uint16).tolist(), pa.list_(pa.uint16())),
                },
                schema=CODES_SCHEMA,
            )
            rows.append(table)
            buffered += len(table)
            n_rows += len(table)
            if buffered >= rows_per_file:
                flush()
    flush()
    stats = usage_statistics(usage)
    manifest = {
        "codes_dir": str(out_dir),
        "files": files,
        "n_images": n_rows,
        "n_failed": len(failed),
        "failed": failed,
        "grid": model.config.grid,
        "n_codes": model.config.n_codes,
        "codebook_size": model.config.codebook_size,
        "resolution": resolution,
        **{f"corpus_{k}": v for k, v in stats.items()},
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    log.info("vqgan: encoded %d images to %d codes each (%d failed)", n_rows, model.config.n_codes, len(failed))
    return manifest
