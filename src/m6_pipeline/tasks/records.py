"""The image-text pairs downstream tasks are built from: every row of the `features`
pipeline's Parquet (id, source, text), with the catalogue attributes its text states, split
into train / validation / test by a stable hash of the id (never by position)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import pyarrow.parquet as pq

from m6_pipeline.data.catalogue import SIZE_WORDS
from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.tasks.t2i.attributes import stated_attributes

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PairRecord:
    id: str
    source: str
    text: str
    attributes: dict[str, str] | None  # colour, category, pattern, size when the text states each once


def stated_size(text: str) -> str | None:
    found = {word for word in SIZE_WORDS.values() if word in text}
    return found.pop() if len(found) == 1 else None


def load_pair_records(features_dir) -> list[PairRecord]:
    records = []
    for path in parquet_files(features_dir):
        table = pq.read_table(path, columns=["id", "source", "text"])
        for record_id, source, text in zip(*(table.column(c).to_pylist() for c in table.column_names)):
            attributes = stated_attributes(text)
            size = stated_size(text)
            if attributes is not None and size is not None:
                attributes = {**attributes, "size": size}
            else:
                attributes = None
            records.append(PairRecord(record_id, source, text, attributes))
    if not records:
        raise FileNotFoundError(f"no pairs under {features_dir}: run `kedro run --pipeline=features`")
    return records


def split_of(record_id: str, val_fraction: float, test_fraction: float, salt: str = "") -> str:
    """train / val / test for an id, stable across runs and machines (crc32 of salt + id)."""
    u = zlib.crc32(f"{salt}{record_id}".encode("utf-8")) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"
