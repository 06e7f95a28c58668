"""The corpus stage's checks on bad data, through its own nodes on Parquet files read back as
Ray Datasets (as the catalog reads them): each stops with the expectation's name; a passing
suite records the rows and the files it validated."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandera.errors import SchemaError

from m6_pipeline.validation.gate import directory_fingerprint, require_passed
from m6_pipeline.validation.schemas import CleanPairs, CleanText, Quarantine
from m6_pipeline.validation.suites import CorpusValidationError
from pipelines.corpus import nodes
from pipelines.datasets import RayParquetDataset
from tests.pipelines.test_corpus_pipeline import small_params

TEXT = "这是一条足够长的中文文本，没有任何问题。"
PIXELS = 96 * 96


@pytest.fixture(scope="module")
def cfg():
    return nodes.parse_config(small_params("unused"))


def written(directory, prefix: str, rows: dict, schema: pa.Schema | None = None):
    """`rows` as `<directory>/<prefix>-00000.parquet`, read back lazily as the catalog does."""
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), directory / f"{prefix}-00000.parquet")
    return RayParquetDataset(str(directory), prefix).load()


def text_rows(**changes) -> dict:
    rows = {"id": ["news/1", "news/2"], "source": ["news", "news"], "text": [TEXT, TEXT + "二"]}
    return {**rows, **changes}


def pair_rows(**changes) -> dict:
    rows = {"id": ["catalogue/1", "catalogue/2"], "source": ["catalogue"] * 2,
            "text": ["一件红色的衬衫"] * 2, "image": [b"\x89PNG...", b"\x89PNG..."], "pixels": [PIXELS] * 2}
    return {**rows, **changes}


def quarantine_rows(**changes) -> dict:
    rows = {"id": ["forum/1"], "source": ["forum"], "modality": ["text"], "reason": ["text_too_short"],
            "detail": ["4 characters"]}
    return {**rows, **changes}


def test_a_passing_suite_records_rows_and_files_and_passes_the_gate(tmp_path, cfg, ray_local):
    result = nodes.validate_clean_text(cfg, written(tmp_path / "text", "text", text_rows()))
    assert result["success"] and result["rows"] == 2
    assert result["unexpected_rows"]["expect_table_row_count_to_be_between(min_value=1)"] == 0
    assert result["unexpected_rows"]["expect_column_values_to_be_unique(id)"] == 0
    assert result["fingerprint"] == directory_fingerprint(tmp_path / "text")
    require_passed(result, "clean_text", tmp_path / "text")


@pytest.mark.parametrize(("changes", "expectation", "record"), [
    ({"text": [TEXT, "太短"]}, r"expect_column_value_lengths_to_be_between\(text\)", "news/2"),
    ({"id": ["news/1", None]}, r"expect_column_values_to_not_be_null\(id\)", None),
    ({"text": [TEXT, "<p>" + TEXT + "</p>"]}, r"expect_column_values_to_not_match_regex\(text, <", "news/2"),
    ({"id": ["news/1", "news/1"]}, r"expect_column_values_to_be_unique\(id\).*news/1", None),
])
def test_a_failing_clean_text_stops_with_the_expectation(tmp_path, cfg, ray_local, changes, expectation,
                                                          record):
    bad = written(tmp_path / "text", "text", text_rows(**changes))
    with pytest.raises(CorpusValidationError, match=expectation) as failure:
        nodes.validate_clean_text(cfg, bad)
    assert "clean_text" in str(failure.value)
    if record:
        assert record in str(failure.value)


@pytest.mark.parametrize(("changes", "expectation"), [
    ({"pixels": [PIXELS, 40 * 40]}, r"expect_column_values_to_be_between\(pixels\)"),
    ({"image": [b"\x89PNG...", None]}, r"expect_column_values_to_not_be_null\(image\)"),
    ({"text": ["一件红色的衬衫", None]}, r"expect_column_values_to_not_be_null\(text\)"),
    ({"id": ["catalogue/1", "catalogue/1"]}, r"expect_column_values_to_be_unique\(id\)"),
])
def test_failing_clean_pairs_stop_with_the_expectation(tmp_path, cfg, ray_local, changes, expectation):
    bad = written(tmp_path / "pairs", "pairs", pair_rows(**changes))
    with pytest.raises(CorpusValidationError, match=expectation):
        nodes.validate_clean_pairs(cfg, bad)


@pytest.mark.parametrize(("changes", "expectation"), [
    ({"reason": ["made_up_reason"]}, r"expect_column_values_to_be_in_set\(reason\).*made_up_reason"),
    ({"modality": ["video"]}, r"expect_column_values_to_be_in_set\(modality\)"),
    ({"source": [None]}, r"expect_column_values_to_not_be_null\(source\)"),
])
def test_a_failing_quarantine_stops_with_the_expectation(tmp_path, ray_local, changes, expectation):
    good = written(tmp_path / "quarantine", "text", quarantine_rows())
    bad = written(tmp_path / "quarantine", "pairs", quarantine_rows(**{"modality": ["pairs"], **changes}))
    with pytest.raises(CorpusValidationError, match=expectation) as failure:
        nodes.validate_quarantine(good, bad)
    assert "pairs_quarantine" in str(failure.value)


def test_an_empty_quarantine_is_a_clean_input(tmp_path, ray_local):
    text = written(tmp_path / "quarantine", "text", quarantine_rows())
    schema = pa.table(quarantine_rows()).schema
    empty = written(tmp_path / "quarantine", "pairs", {c: [] for c in schema.names}, schema)
    result = nodes.validate_quarantine(text, empty)
    assert result["pairs"]["success"] and result["pairs"]["rows"] == 0


def test_an_empty_clean_corpus_stops_every_clean_suite(tmp_path, cfg, ray_local):
    text_schema = pa.table(text_rows()).schema
    text = written(tmp_path / "text", "text", {c: [] for c in text_schema.names}, text_schema)
    with pytest.raises(CorpusValidationError,
                       match=r"expect_table_row_count_to_be_between\(min_value=1\): clean_text is empty"):
        nodes.validate_clean_text(cfg, text)
    pairs_schema = pa.table(pair_rows()).schema
    pairs = written(tmp_path / "pairs", "pairs", {c: [] for c in pairs_schema.names}, pairs_schema)
    with pytest.raises(CorpusValidationError, match=r"clean_pairs is empty"):
        nodes.validate_clean_pairs(cfg, pairs)


@pytest.mark.parametrize(("model", "batch", "check"), [
    (CleanText, {"id": ["a"], "source": ["news"], "title": [None], "text": [""], "n_chars": [0], "order": [0]},
     "str_length"),
    (CleanText, {"id": ["a"], "source": ["news"], "title": [None], "text": [TEXT], "n_chars": [0], "order": [0]},
     "greater_than_or_equal_to"),
    (CleanPairs, {"id": ["a"], "source": ["shop"], "text": [TEXT], "width": [0], "height": [96]},
     "greater_than_or_equal_to"),
    (Quarantine, {"id": ["a"], "source": ["news"], "modality": ["text"], "reason": ["made_up_reason"],
                  "detail": [None]}, "isin"),
])
def test_a_pandera_failure_at_the_node_boundary_stops_the_batch(model, batch, check):
    routed = nodes._checked(lambda table: table, model)
    with pytest.raises(SchemaError, match=check):
        routed(pa.table(batch))


def test_a_pandera_failure_inside_ray_data_stops_the_run(tmp_path, ray_local):
    ds = written(tmp_path / "routed", "text", quarantine_rows(reason=["made_up_reason"]))
    with pytest.raises(Exception, match=r"isin.*made_up_reason|made_up_reason.*isin"):
        ds.map_batches(nodes._checked(lambda table: table, Quarantine), batch_format="pyarrow").materialize()
