"""A Kedro dataset for a Ray Dataset stored as a directory of Parquet files.

`save` executes the (lazy) Ray Dataset and streams it to `<filepath>/<prefix>-NNNNN.parquet`
with deterministic file names (so DVC sees the same outputs for the same inputs), and one empty
file with the schema when the dataset has no rows (so an empty result loads, and its
validation can say it is empty); only files
with this dataset's prefix are replaced, so several datasets may share one directory (the
text and pairs halves of `data/03_primary/quarantine`).

`load` returns a lazy Ray Dataset read by `ParquetFilesDatasource`: one read task a file (the
files are bounded to `max_rows_per_file` rows when written), with `select_columns` pushed down
into the Parquet reader. Ray's own `read_parquet` spends 1.5-4 s of a 2-core machine listing,
sampling and splitting files before the first row, four to six times the read itself
(`benchmarks/corpus_cleaning.py`); these files need none of that.

`filepath` is a local path or a URI (`s3://bucket/corpus/text`; m6_pipeline.storage): on a
cluster whose nodes share no disk, Ray Data's write tasks put the files in the bucket and the
renames happen there.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError

from m6_pipeline.storage import Location, location


def prefixed_parquet_files(path: Location, prefix: str) -> list[Location]:
    """`<path>/<prefix>-*.parquet`, sorted: the files one dataset of a shared directory owns."""
    return path.glob(f"{prefix}-*.parquet")


def _ordered_filenames():
    """Ray FilenameProvider whose names sort in task order (Ray insists on its write id)."""
    from ray.data.datasource import FilenameProvider

    class Provider(FilenameProvider):
        def get_filename_for_task(self, write_uuid, task_index):
            return f"{task_index:06d}-{write_uuid}.parquet"

    return Provider()


class RayParquetDataset(AbstractDataset):
    def __init__(self, filepath: str, prefix: str = "part", columns: list[str] | None = None,
                 max_rows_per_file: int = 65536, metadata: dict[str, Any] | None = None):
        self._path = location(filepath)
        self._prefix = prefix
        self._columns = columns
        # bounded files keep every later read task's memory bounded, whatever the corpus size
        self._max_rows_per_file = max_rows_per_file
        self.metadata = metadata

    def _files(self) -> list[Location]:
        return prefixed_parquet_files(self._path, self._prefix)

    def load(self):
        import ray.data

        files = self._files()
        if not files:
            raise DatasetError(f"no {self._prefix}-*.parquet under {self._path}: run the pipeline "
                               "that writes it first (see `kedro registry list`)")
        from pipelines.datasets.parquet_files_datasource import ParquetFilesDatasource

        return ray.data.read_datasource(ParquetFilesDatasource([f.uri for f in files], self._columns),
                                        override_num_blocks=len(files))

    def save(self, data) -> None:
        import ray.data

        if not isinstance(data, ray.data.Dataset):
            raise DatasetError(f"RayParquetDataset({self._path}) saves a ray.data.Dataset, got {type(data)}")
        # write into a staging directory, then give the files stable names in task order:
        # `<prefix>-00000.parquet`, ... (the same inputs give the same file names for DVC)
        staging = self._path.parent() / f".{self._path.name}.{self._prefix}.staging"
        staging.delete()
        data.write_parquet(staging.path, filesystem=staging.filesystem, filename_provider=_ordered_filenames(),
                           max_rows_per_file=self._max_rows_per_file)
        self._path.mkdir()
        for old in self._files():
            old.delete()
        parts = staging.glob("*.parquet")
        for i, part in enumerate(parts):
            part.filesystem.move(part.path, (self._path / f"{self._prefix}-{i:05d}.parquet").path)
        staging.delete()
        if not parts:  # Ray writes no file for no rows: one empty file says "no rows", with the schema
            self._write_empty(data)

    def _write_empty(self, data) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = data.schema()
        arrow = getattr(schema, "base_schema", None) if schema is not None else None
        if not isinstance(arrow, pa.Schema):
            raise DatasetError(f"RayParquetDataset({self._path}): the dataset has no rows and no schema "
                               "to write an empty file with; an upstream step produced nothing typed")
        empty = self._path / f"{self._prefix}-00000.parquet"
        pq.write_table(arrow.empty_table(), empty.path, filesystem=empty.filesystem)

    def _exists(self) -> bool:
        return bool(self._files())

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._path.uri, "prefix": self._prefix}
