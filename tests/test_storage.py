"""Locations on the local disk behave as the paths they replace (the S3 side is tests/cluster)."""

from __future__ import annotations

from m6_pipeline.storage import location


def test_glob_looks_only_into_directories_as_path_glob_does(tmp_path):
    (tmp_path / "text").mkdir()
    (tmp_path / "text/train-00000.parquet").write_text("x")
    (tmp_path / "shards_summary.json").write_text("{}")  # a file beside the shard directories
    root = location(tmp_path)
    assert [f.relative_to(root) for f in root.glob("*/*.parquet")] == ["text/train-00000.parquet"]
    assert [f.name for f in root.glob("*")] == ["shards_summary.json", "text"]
    assert location(tmp_path / "shards_summary.json").children() == []
    assert location(tmp_path / "absent").glob("*") == [] and not location(tmp_path / "absent").exists()


def test_a_relative_path_is_made_absolute_and_a_file_uri_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert location("data/x").uri == str(tmp_path / "data/x") and location("data/x").is_local
    assert location(f"file://{tmp_path}/y").local_path() == tmp_path / "y"
