"""A read-only Kedro view of a `RayParquetDataset` directory as streamed Arrow record batches.

For nodes that fold a few columns into a small driver-side result (the global deduplication
keys): reading them with PyArrow in the driver costs a few hundredths of a second, where a
Ray Data execution costs 1.5-2.5 s of planning and scheduling on a 2-core machine
(`benchmarks/corpus_cleaning.py`). Use it through Kedro's transcoding, beside the Ray entry
that writes the files:

    text_annotated@ray:   {type: pipelines.datasets.RayParquetDataset, filepath: D, prefix: text}
    text_annotated@keys:  {type: pipelines.datasets.ArrowBatchesDataset, filepath: D, prefix: text,
                           columns: [order, id, reason]}

Batches stream (one Parquet row group at a time), so memory stays bounded by the batch size.
The driver must see the directory, as it already must for `RayParquetDataset.save`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from m6_pipeline.storage import Location, location
from pipelines.datasets.ray_parquet import prefixed_parquet_files


class ArrowBatches:
    """A re-iterable stream of `pa.RecordBatch` over sorted Parquet files."""

    def __init__(self, files: list[Location], columns: list[str] | None, batch_size: int):
        self.files = files
        self.columns = columns
        self.batch_size = batch_size

    def select(self, columns: list[str]) -> ArrowBatches:
        """The same files, fewer columns (for a node whose parameters say it needs fewer)."""
        return ArrowBatches(self.files, columns, self.batch_size)

    def __iter__(self) -> Iterator:
        """File by file, one row group at a time: PyArrow's multi-file scanner reads ahead
        several files and batches, which doubled the driver's peak memory on the 2.2M-document
        corpus (1.04 GB against 0.49 GB for the same keys) and was slower."""
        import pyarrow.parquet as pq

        for file in self.files:
            with file.open_input_file() as handle:
                reader = pq.ParquetFile(handle)
                missing = sorted(set(self.columns or ()) - set(reader.schema_arrow.names))
                if missing:
                    raise DatasetError(f"columns {missing} are not in {file} "
                                       f"(it has {reader.schema_arrow.names})")
                yield from reader.iter_batches(batch_size=self.batch_size, columns=self.columns, use_threads=False)


class ArrowBatchesDataset(AbstractDataset):
    def __init__(self, filepath: str, prefix: str = "part", columns: list[str] | None = None,
                 batch_size: int = 65536, metadata: dict[str, Any] | None = None):
        self._path = location(filepath)
        self._prefix = prefix
        self._columns = columns
        self._batch_size = batch_size
        self.metadata = metadata

    def _files(self) -> list[Location]:
        return prefixed_parquet_files(self._path, self._prefix)

    def load(self) -> ArrowBatches:
        files = self._files()
        if not files:
            raise DatasetError(f"no {self._prefix}-*.parquet under {self._path}: run the node that "
                               "writes its @ray entry first")
        return ArrowBatches(files, self._columns, self._batch_size)

    def save(self, data) -> None:
        raise DatasetError(f"ArrowBatchesDataset({self._path}) is read-only: save through the "
                           "RayParquetDataset entry of the same files (its @ray transcoding)")

    def _exists(self) -> bool:
        return bool(self._files())

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path.uri, "prefix": self._prefix, "columns": self._columns}
