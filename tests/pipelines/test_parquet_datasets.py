"""The Parquet datasets of the corpus stage: Ray reads with column pushdown, Arrow key streams."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kedro.io import DatasetError

from pipelines.datasets import ArrowBatchesDataset, RayParquetDataset


@pytest.fixture
def written(tmp_path, ray_local):
    import ray.data

    rows = [{"order": i, "text": f"第{i}条记录", "minhash": [i, i + 1]} for i in range(300)]
    store = RayParquetDataset(str(tmp_path / "annotated"), "text", max_rows_per_file=64)
    store.save(ray.data.from_items(rows, override_num_blocks=3))
    return tmp_path / "annotated", rows


def test_round_trip_keeps_order_and_bounds_files(written):
    path, rows = written
    files = sorted(path.glob("text-*.parquet"))
    assert len(files) >= 5 and all(pq.read_metadata(f).num_rows <= 64 for f in files)
    back = RayParquetDataset(str(path), "text").load().take_all()
    assert [r["order"] for r in back] == list(range(300))
    assert back[7]["text"] == "第7条记录" and list(back[7]["minhash"]) == [7, 8]


def test_select_columns_reaches_the_reader(written):
    path, _ = written
    ds = RayParquetDataset(str(path), "text").load().select_columns(["order"])
    out = ds.take_all()
    assert set(out[0]) == {"order"} and len(out) == 300
    # the projected read decodes no other column: the datasource's estimate shrinks with it
    from pipelines.datasets.parquet_files_datasource import ParquetFilesDatasource

    files = [str(f) for f in sorted(path.glob("text-*.parquet"))]
    every, one = ParquetFilesDatasource(files), ParquetFilesDatasource(files, ["order"])
    assert one.estimate_inmemory_data_size() < every.estimate_inmemory_data_size()
    tasks = one.get_read_tasks(1)
    assert len(tasks) == len(files)
    assert pa.concat_tables([t for task in tasks for t in task()]).column_names == ["order"]


def test_a_missing_column_is_named(written):
    path, _ = written
    with pytest.raises(DatasetError, match=r"\['nope'\] are not in"):
        RayParquetDataset(str(path), "text", columns=["order", "nope"]).load().take_all()
    with pytest.raises(DatasetError, match=r"\['nope'\] are not in"):
        list(ArrowBatchesDataset(str(path), "text", columns=["nope"]).load())


def test_arrow_batches_stream_the_key_columns_and_refuse_to_save(written):
    path, _ = written
    view = ArrowBatchesDataset(str(path), "text", columns=["order", "minhash"], batch_size=50)
    batches = list(view.load())
    assert all(b.num_rows <= 50 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.column_names == ["order", "minhash"]
    assert sorted(table.column("order").to_pylist()) == list(range(300))
    assert list(view.load())  # re-iterable: a second pass reads again
    with pytest.raises(DatasetError, match="read-only"):
        view.save(table)
    with pytest.raises(DatasetError, match="run the node that writes"):
        ArrowBatchesDataset(str(path), "pairs").load()
