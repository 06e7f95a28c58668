"""The app against a real store in a temporary project: a conf dir whose `app` parameters point
at it, the batch of tests/annotation loaded, two annotators and an admin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from m6_pipeline.annotation.store import AnnotationStore
from m6_pipeline.evaluation.batches import build_batch
from tests.annotation.sample_batch import predictions

APP = Path(__file__).parents[2] / "app"


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """{store, tokens, admin, key, argv}: sys.argv is the app's `-- --conf-source ... --env local`."""
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    store_path = tmp_path / "annotations.sqlite"
    (conf / "base" / "parameters_app.yml").write_text(
        f"app:\n  store: {store_path}\n  batch_dir: {tmp_path / 'batch'}\n"
        f"  demos:\n    tokenizer: {tmp_path / 'none' / 'tokenizer.json'}\n")
    rows, images = predictions()
    items, key = build_batch(rows, {"caption": 10, "vqa": 10, "qa": 10, "poem": 10, "t2i": 10}, seed=3)
    store = AnnotationStore(store_path)
    tokens = {name: store.create_annotator(name) for name in ("li", "wang")}
    admin = store.create_annotator("boss", role="admin")
    store.assign(store.load_batch(items, key, images, seed=3), 2, seed=3)
    argv = ["streamlit_app.py", "--conf-source", str(conf), "--env", "local"]
    monkeypatch.setattr(sys, "argv", argv)
    return {"store": store, "tokens": tokens, "admin": admin, "key": key, "argv": argv, "tmp": tmp_path}
