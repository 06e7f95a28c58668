"""The image-text pairs downstream tasks are built from: every row of the `features`
pipeline's Parquet (id, source, text), with the catalogue attributes its text states, split
into train / validation / test by a stable hash of the id (never by position).

The test products are the same for every task and are never seen in pretraining: pretraining
leaves out the pairs `is_downstream_test` picks (its model card records the fraction), so a
pretrained model cannot have learnt a test image's caption before it is asked for it."""

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


def _unit(key: str) -> float:
    return zlib.crc32(key.encode("utf-8")) / 2**32


def is_downstream_test(record_id: str, fraction: float) -> bool:
    """True for the `fraction` of pair ids reserved for downstream testing (stable everywhere)."""
    return _unit(f"downstream-test:{record_id}") < fraction


def split_of(record_id: str, val_fraction: float, test_fraction: float, salt: str = "") -> str:
    """train / val / test for an id, stable across runs and machines: test is the shared
    downstream test set, val a `val_fraction` of the rest drawn with the task's salt."""
    if is_downstream_test(record_id, test_fraction):
        return "test"
    return "val" if _unit(f"{salt}:{record_id}") < val_fraction else "train"
