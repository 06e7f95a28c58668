"""A deterministic, resumable stream over Parquet token shards, and the batches of each step.

The order of samples is a function of (seed, epoch) only: row groups are permuted, then the rows
inside each. Sample k of the stream is found by arithmetic on row-group sizes read from the
Parquet footers, and read with one row-group read (the current one is cached). So resuming at
step s costs nothing: the batch of step s for rank r is computed, not replayed, and the corpus
is never loaded whole. The shards may be local or at a URI (`m6_pipeline.storage`): only footers
and one row group at a time are read, so a worker streams them from object storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m6_pipeline.storage import Location, location


@dataclass(frozen=True)
class RowGroup:
    file: Location
    index: int
    n_rows: int


class ShardStream:
    """Samples of `<shard_dir>/<split>-*.parquet` in a seeded block-shuffled order, endlessly."""

    def __init__(self, shard_dir: str | Path | Location, split: str, seed: int, shuffle: bool = True) -> None:
        self.files = location(shard_dir).glob(f"{split}-*.parquet")
        if not self.files:
            raise FileNotFoundError(
                f"no {split} shards in {shard_dir}; run the pretraining data step first"
            )
        self.groups = []
        for file in self.files:
            with file.open_input_file() as handle:
                metadata = pq.ParquetFile(handle).metadata
                self.groups += [RowGroup(file, i, metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups)]
        self.seed, self.shuffle = seed, shuffle
        self._cached: tuple[RowGroup, pa.Table] | None = None
        self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._row_orders: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return sum(g.n_rows for g in self.groups)

    @cached_property
    def _sizes(self) -> np.ndarray:
        return np.array([g.n_rows for g in self.groups])

    def _epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Row-group order of an epoch and the cumulative row counts in that order."""
        if epoch not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[epoch] = self._compute_epoch_order(epoch)
        return self._orders[epoch]

    def _compute_epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.shuffle:
            order = np.arange(len(self.groups))
        else:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))
        return order, np.cumsum(self._sizes[order])

    def _row_order(self, epoch: int, group_index: int) -> np.ndarray:
        key = (epoch, group_index)
        if key not in self._row_orders:
            if len(self._row_orders) > 64:
                self._row_orders.clear()
            n_rows = self.groups[group_index].n_rows
            self._row_orders[key] = np.random.default_rng([self.seed, epoch, group_index]).permutation(n_rows)
        return self._row_orders[key]

    def _read(self, group: RowGroup) -> pa.Table:
        if self._cached is None or self._cached[0] != group:
            with group.file.open_input_file() as handle:
                self._cached = (group, pq.ParquetFile(handle).read_row_group(group.index))
        return self._cached[1]

    def take(self, start: int, count: int) -> list[dict]:
        """Samples start .. start+count-1 of the endless stream, as rows."""
        rows: list[dict] = []
        total = len(self)
        for k in range(start, start + count):
            epoch, within = divmod(k, total)
            order, ends = self._epoch_order(epoch)
            slot = int(np.searchsorted(ends, within, side="right"))
            group_index = int(order[slot])
            offset = within - (int(ends[slot - 1]) if slot else 0)
            group = self.groups[group_index]
            if self.shuffle:
                offset = int(self._row_order(epoch, group_index)[offset])
            rows.append(self._read(group).slice(offset, 1).to_pylist()[0])
        return rows
