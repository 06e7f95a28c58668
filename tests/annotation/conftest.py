"""A small real batch (build_batch over predictions of every kind, with images) in a fresh store."""

from __future__ import annotations

import pytest

from m6_pipeline.annotation.store import AnnotationStore
from m6_pipeline.evaluation.batches import build_batch
from tests.annotation.sample_batch import predictions


@pytest.fixture
def batch():
    rows, images = predictions()
    items, key = build_batch(rows, {"caption": 10, "vqa": 10, "qa": 10, "poem": 10, "t2i": 10}, seed=3)
    return items, key, images


@pytest.fixture
def store(tmp_path) -> AnnotationStore:
    return AnnotationStore(tmp_path / "annotations.sqlite")
