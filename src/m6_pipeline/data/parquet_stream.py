"""Reading a Parquet directory of the corpus as a stream of record batches, and a stable
held-out split by record id. Shared by the tokenizer and the image-feature stages."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_files(directory: str | Path) -> list[Path]:
    """`*.parquet` under `directory` in name order; raises if there are none."""
    files = sorted(Path(directory).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"no *.parquet under {directory}: run the corpus stage first "
            "(`kedro run --pipeline=corpus`) or fix the directory in parameters"
        )
    return files


def parquet_batches(
    directory: str | Path, columns: list[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most `batch_size` rows from every `*.parquet` under `directory`,
    in file-name order, reading only `columns` (memory is bounded by one batch)."""
    for path in parquet_files(directory):
        parquet = pq.ParquetFile(path)
        missing = sorted(set(columns) - set(parquet.schema_arrow.names))
        if missing:
            raise KeyError(f"{path} lacks columns {missing}: is this a clean corpus directory?")
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)


def is_held_out(record_id: str, fraction: float) -> bool:
    """True for a stable `fraction` of ids (crc32 of the id): the same on every run and machine."""
    return zlib.crc32(record_id.encode("utf-8")) < fraction * 2**32
