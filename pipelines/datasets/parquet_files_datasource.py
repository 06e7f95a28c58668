"""A Ray Data datasource over a known, ordered list of Parquet files (`RayParquetDataset.load`).

Ray's `read_parquet` lists, samples and splits files before the first row: 1.5-4 s on a
2-core machine for the corpus stage's intermediate files, four to six times the read itself
(`benchmarks/corpus_cleaning.py`). Files this project wrote need none of that: their footers
give the row counts and sizes, and each file (bounded in rows when written) is one read task.
The files are local paths or URIs (m6_pipeline.storage): each read task opens its file through
the filesystem its node's environment describes.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from m6_pipeline.storage import location


def _footer(uri: str) -> pq.FileMetaData:
    with location(uri).open_input_file() as handle:
        return pq.read_metadata(handle)


class ParquetFilesDatasource(Datasource):
    """One read task a file, in the files' order; `ds.select_columns([...])` is pushed down
    into the reader, so only those columns are decoded."""

    def __init__(self, files: list[str], columns: list[str] | None = None):
        super().__init__()
        self._files = list(files)
        self._footers = [_footer(f) for f in self._files]  # footers only: cheap
        self._projection_map = None if columns is None else {c: c for c in columns}

    def supports_projection_pushdown(self) -> bool:
        return True

    def get_name(self) -> str:
        return "ParquetFiles"

    def estimate_inmemory_data_size(self) -> int:
        return sum(self._footer_bytes(m) for m in self._footers)

    def _columns(self) -> list[str] | None:
        return self._get_data_columns()

    def _footer_bytes(self, meta) -> int:
        wanted = self._columns()
        total = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                if wanted is None or column.path_in_schema.split(".")[0] in wanted:
                    total += column.total_uncompressed_size
        return total

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context=None) -> list[ReadTask]:
        columns = self._columns()
        schema = self._footers[0].schema.to_arrow_schema() if self._footers else None
        if schema is not None and columns is not None:
            missing = sorted(set(columns) - set(schema.names))
            if missing:
                raise ValueError(f"columns {missing} are not in {self._files[0]} (it has {schema.names})")
            schema = pa.schema([schema.field(c) for c in columns])

        def read(path: str):
            with location(path).open_input_file() as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=65536, columns=columns):
                    yield pa.Table.from_batches([batch])

        return [ReadTask(lambda path=path: read(path),
                         BlockMetadata(num_rows=meta.num_rows, size_bytes=self._footer_bytes(meta),
                                       input_files=[path], exec_stats=None),
                         schema=schema, per_task_row_limit=per_task_row_limit)
                for path, meta in zip(self._files, self._footers)]
