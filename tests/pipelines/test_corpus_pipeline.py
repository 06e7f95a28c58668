"""The corpus pipeline end to end on a small embedded corpus, through Kedro's runner."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.dataset as pds
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from m6_pipeline.validation.gate import require_passed
from m6_pipeline.validation.suites import CorpusValidationError
from pipelines.corpus import nodes
from pipelines.corpus.pipeline import create_pipeline
from pipelines.datasets import ArrowBatchesDataset, RayParquetDataset
from tests.conftest import ROOT


def small_params(raw_dir, **overrides) -> dict:
    params = yaml.safe_load((ROOT / "conf/base/parameters_corpus.yml").read_text())["corpus"]
    params.update(raw_dir=str(raw_dir), num_workers=2)
    params["text_rules"]["lexicon_path"] = str(ROOT / params["text_rules"]["lexicon_path"])
    params["catalogue"].update(n_items=120, image_size=96, items_per_page=4)
    params["perplexity"]["reference_max_docs"] = 4000
    params.update(overrides)
    return params


def catalog_for(tmp_path, params: dict) -> DataCatalog:
    ray_sets = {
        "text_annotated@ray": ("inter/text_annotated", "text"),
        "pairs_annotated@ray": ("inter/pairs_annotated", "pairs"),
        "clean_text": ("primary/text", "text"), "clean_pairs": ("primary/pairs", "pairs"),
        "text_quarantine": ("primary/quarantine", "text"), "pairs_quarantine": ("primary/quarantine", "pairs"),
    }
    datasets = {name: RayParquetDataset(str(tmp_path / path), prefix) for name, (path, prefix) in ray_sets.items()}
    datasets["text_annotated@keys"] = ArrowBatchesDataset(str(tmp_path / "inter/text_annotated"), "text",
                                                          columns=["order", "id", "exact_hash", "minhash", "reason"])
    datasets["pairs_annotated@keys"] = ArrowBatchesDataset(str(tmp_path / "inter/pairs_annotated"), "pairs",
                                                           columns=["order", "id", "phash", "reason"])
    datasets["params:corpus"] = MemoryDataset(params)
    return DataCatalog(datasets=datasets)


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("corpus")
    raw = tmp / "raw"
    # a user's own source beside the embedded ones, with bad lines of every kind
    (raw / "text" / "forum").mkdir(parents=True)
    (raw / "text" / "forum" / "posts.jsonl").write_bytes(b"\n".join([
        json.dumps({"id": "u1", "title": "论坛里的一个好帖子", "text": "<p>这是论坛里的一段正常讨论，大家都很认真！！！</p>"},
                   ensure_ascii=False).encode(),
        b'{"text": "\xff\xfe"}', b"not json", b"",
        json.dumps({"id": "u2", "text": "本期六合彩开奖结果公布，欢迎大家踊跃参与。"}, ensure_ascii=False).encode(),
    ]) + b"\n")
    catalog = catalog_for(tmp, small_params(raw))
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    return tmp, outputs


def test_report_balances_and_every_source_is_accounted(corpus_run):
    tmp, outputs = corpus_run
    report = outputs["corpus_report"].load() if hasattr(outputs["corpus_report"], "load") else outputs["corpus_report"]
    sources = report["sources"]
    assert {"reviews", "news", "forum", "catalogue", "shop"} <= set(sources)
    for name, entry in sources.items():
        assert entry["input"] == entry["kept"] + sum(entry["dropped"].values()), name
    assert sources["forum"]["input"] == 5
    assert sources["forum"]["dropped"] == {"invalid_utf8": 1, "spam_lexicon": 1, "unparseable_json": 2}
    # the crawled pages exercise every webpage rule
    shop = sources["shop"]["dropped"]
    assert shop.get("remote_url_not_fetched", 0) >= 1 and shop.get("path_outside_raw", 0) >= 1
    assert shop.get("no_surrounding_text", 0) >= 1  # navigation icons carry no text of their own
    assert sources["catalogue"]["kept"] > 0.8 * sources["catalogue"]["input"]


def test_outputs_follow_the_contract(corpus_run):
    tmp, _ = corpus_run
    text = pds.dataset(tmp / "primary/text").to_table().to_pandas()
    pairs = pds.dataset(tmp / "primary/pairs").to_table().to_pandas()
    quarantine = pds.dataset(tmp / "primary/quarantine").to_table().to_pandas()
    assert text["id"].is_unique and pairs["id"].is_unique
    assert (text["text"].str.len() >= 15).all()
    assert not text["text"].str.contains("<p>|！！", regex=True).any()
    forum = text[text["source"] == "forum"]
    assert forum["text"].tolist() == ["这是论坛里的一段正常讨论，大家都很认真！"]
    assert (pairs["pixels"] >= 5000).all() and pairs["image"].map(len).gt(0).all()
    assert set(quarantine["modality"]) == {"text", "pairs"}
    assert quarantine["reason"].notna().all() and quarantine["detail"].notna().all()


def test_the_suites_record_what_they_validated_for_the_stages_downstream(corpus_run):
    tmp, outputs = corpus_run
    report = outputs["corpus_report"].load() if hasattr(outputs["corpus_report"], "load") else outputs["corpus_report"]
    for name, directory in (("clean_text", tmp / "primary/text"), ("clean_pairs", tmp / "primary/pairs")):
        result = report["validation"][name]
        assert result["rows"] == pds.dataset(directory).count_rows() > 0, name
        require_passed(result, name, directory)  # the gate of the tokenizer, features and vqgan stages
    assert report["validation"]["quarantine"]["pairs"]["fingerprint"]["files"] >= 1


def test_a_failing_suite_stops_the_run_and_names_the_expectation(ray_local):
    import ray.data

    bad = ray.data.from_pandas(pd.DataFrame({"id": ["ok", "bad"], "source": ["s", "s"],
                                             "text": ["这是一条足够长的中文文本，没有任何问题。", "太短"]}))
    cfg = nodes.parse_config(small_params("unused"))
    with pytest.raises(CorpusValidationError, match=r"value_lengths_to_be_between\(text\).*'bad'"):
        nodes.validate_clean_text(cfg, bad)
