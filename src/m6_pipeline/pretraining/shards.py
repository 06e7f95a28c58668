"""Token shards for pretraining: the clean corpus tokenized once, split into train and
validation by a hash of the record id, written as Parquet row groups that a stream can address.

text/{train,val}-NNNNN.parquet:  id, token_ids (list<int32>)
pairs/{train,val}-NNNNN.parquet: id, token_ids, n_patches, d_feature, patch_features (float16 bytes)
Long texts become several windows of `max_text_tokens` (id suffixed `#w<k>`), so nothing is cut.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field
from tokenizers import Tokenizer

from m6_pipeline.data.parquet_stream import is_held_out, parquet_batches
from m6_pipeline.tasks.records import is_downstream_test

log = logging.getLogger(__name__)

TEXT_SCHEMA = pa.schema([("id", pa.string()), ("token_ids", pa.list_(pa.int32()))])
PAIRS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("token_ids", pa.list_(pa.int32())),
        ("n_patches", pa.int32()),
        ("d_feature", pa.int32()),
        ("patch_features", pa.binary()),
    ]
)


class ShardConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_text_tokens: int = Field(128, description="window length of a text, in tokens")
    min_text_tokens: int = Field(8, description="shorter windows (tails) are not trained on")
    val_fraction: float = Field(0.02, gt=0, lt=0.5, description="share of ids held out")
    downstream_test_fraction: float = Field(
        0.1, ge=0, lt=0.5, description="share of pair ids never pretrained on: the downstream "
        "tasks' test products (m6_pipeline.tasks.records.is_downstream_test)",
    )
    row_group_rows: int = Field(1024, description="rows per Parquet row group (a stream block)")
    read_batch_rows: int = 4096


def _windows(ids: list[int], config: ShardConfig) -> Iterator[tuple[int, list[int]]]:
    for k, start in enumerate(range(0, max(len(ids), 1), config.max_text_tokens)):
        window = ids[start : start + config.max_text_tokens]
        if len(window) >= config.min_text_tokens:
            yield k, window


class _SplitWriter:
    """train/val ParquetWriters that roll over to a new file every `rows_per_file` rows."""

    def __init__(self, out_dir: Path, schema: pa.Schema, config: ShardConfig) -> None:
        self.out_dir, self.schema, self.config = out_dir, schema, config
        out_dir.mkdir(parents=True, exist_ok=True)
        self.buffers: dict[str, list[dict]] = {"train": [], "val": []}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows = {"train": 0, "val": 0}
        self.reserved = 0

    def add(self, split: str, row: dict) -> None:
        self.buffers[split].append(row)
        if len(self.buffers[split]) >= self.config.row_group_rows:
            self._flush(split)

    def _flush(self, split: str) -> None:
        rows = self.buffers[split]
        if not rows:
            return
        if split not in self.writers:
            path = self.out_dir / f"{split}-00000.parquet"
            self.writers[split] = pq.ParquetWriter(path, self.schema)
        table = pa.Table.from_pylist(rows, schema=self.schema)
        self.writers[split].write_table(table, row_group_size=self.config.row_group_rows)
        self.rows[split] += len(rows)
        self.buffers[split] = []

    def close(self) -> dict[str, int]:
        for split in ("train", "val"):
            self._flush(split)
            if split in self.writers:
                self.writers[split].close()
        return {**self.rows, "reserved_for_downstream_test": self.reserved} if self.reserved else dict(self.rows)


def _clear(out_dir: Path) -> None:
    for old in out_dir.glob("*.parquet"):
        old.unlink()


def write_text_shards(
    text_dir: Path, tokenizer: Tokenizer, out_dir: Path, config: ShardConfig
) -> dict[str, int]:
    """Tokenize the clean text corpus (`id`, `text`) by record batches into windows."""
    _clear(out_dir)
    writer = _SplitWriter(out_dir, TEXT_SCHEMA, config)
    for batch in parquet_batches(text_dir, ["id", "text"], config.read_batch_rows):
        ids, texts = batch.column("id").to_pylist(), batch.column("text").to_pylist()
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        for record_id, encoding in zip(ids, encodings, strict=True):
            split = "val" if is_held_out(record_id, config.val_fraction) else "train"
            for k, window in _windows(encoding.ids, config):
                writer.add(split, {"id": f"{record_id}#w{k}", "token_ids": window})
    return writer.close()


def write_pair_shards(
    features_dir: Path, tokenizer: Tokenizer, out_dir: Path, config: ShardConfig
) -> dict[str, int]:
    """Tokenize the pair texts beside their patch features (text truncated to one window);
    the downstream test pairs are left out and counted."""
    _clear(out_dir)
    writer = _SplitWriter(out_dir, PAIRS_SCHEMA, config)
    columns = ["id", "text", "n_patches", "d_feature", "patch_features"]
    for batch in parquet_batches(features_dir, columns, config.read_batch_rows):
        rows = batch.to_pylist()
        encodings = tokenizer.encode_batch([r.pop("text") for r in rows], add_special_tokens=False)
        for row, encoding in zip(rows, encodings, strict=True):
            if is_downstream_test(row["id"], config.downstream_test_fraction):
                writer.reserved += 1
                continue
            split = "val" if is_held_out(row["id"], config.val_fraction) else "train"
            writer.add(split, {**row, "token_ids": encoding.ids[: config.max_text_tokens]})
    return writer.close()
