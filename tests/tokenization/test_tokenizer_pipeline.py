"""The tokenizer pipeline through Kedro's runner, with the JSON tokenizer dataset."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from m6_pipeline.tokenization import special_ids
from pipelines.datasets import TokenizerJSONDataset
from pipelines.tokenizer.pipeline import create_pipeline
from tests.validation.results import passed_result

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_writes_a_loadable_tokenizer_and_a_report(small_corpus, tmp_path):
    text_dir, pairs_dir = small_corpus
    params = yaml.safe_load((ROOT / "conf/base/parameters_tokenizer.yml").read_text())["tokenizer"]
    params.update(
        text_dir=str(text_dir), pairs_dir=str(pairs_dir), vocab_size=300, holdout_fraction=0.2
    )
    catalog = DataCatalog(
        datasets={
            "params:tokenizer": MemoryDataset(params),
            "corpus_report": MemoryDataset({}),
            "clean_text_validation": MemoryDataset(passed_result("clean_text", text_dir)),
            "clean_pairs_validation": MemoryDataset(passed_result("clean_pairs", pairs_dir)),
            "tokenizer": TokenizerJSONDataset(str(tmp_path / "tokenizer" / "tokenizer.json")),
            "tokenizer_report": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    report = catalog["tokenizer_report"].load()
    loaded = TokenizerJSONDataset(str(tmp_path / "tokenizer" / "tokenizer.json")).load()
    assert special_ids(loaded).mask == 4
    assert report["vocab_size"]["actual"] == loaded.get_vocab_size() <= 300
    assert report["held_out"]["passages"] > 0 and report["held_out"]["unk_rate"] < 0.05
    assert report["held_out"]["chinese_single_token_share"] > 0.95
    assert report["training"]["passages"] + report["held_out"]["passages"] == 160
    json.dumps(report)  # JSON-ready for the catalog's JSONDataset
