"""The four pretraining tasks as sequences: one masked span of 15%, the layout, the labels."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model.m6 import IGNORE_INDEX
from m6_pipeline.pretraining.tasks import TASKS, build_example, collate, mask_one_span
from tests.pretraining.synthetic_shards import SPECIAL


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(10, 999), min_size=1, max_size=300), st.integers(0, 2**31))
def test_one_contiguous_span_of_fifteen_percent_becomes_one_mask(ids, seed):
    masked = mask_one_span(ids, 0.15, SPECIAL.mask, np.random.default_rng(seed))
    assert masked.count(SPECIAL.mask) == 1
    at = masked.index(SPECIAL.mask)
    span = len(ids) - (len(masked) - 1)
    assert span == max(1, round(0.15 * len(ids)))
    assert masked[:at] == ids[:at] and masked[at + 1 :] == ids[at + span :]


@pytest.mark.parametrize("task", TASKS)
def test_layout_and_labels(task):
    rng = np.random.default_rng(0)
    text = list(range(10, 30))
    features = np.ones((4, 8)) if task in ("image_to_text", "multimodality_to_text") else None
    example = build_example(task, text, SPECIAL, rng, patch_features=features)
    assert example.target == [SPECIAL.bos, *text, SPECIAL.eos]  # the whole text is decoded
    if task == "language_modelling" or task == "image_to_text":
        assert example.prefix_text == []  # the masked input is left blank
    else:
        assert example.prefix_text[-1] == SPECIAL.sep and SPECIAL.mask in example.prefix_text
    batch = collate([example], SPECIAL.pad)
    start = int(batch["prefix_lengths"][0])
    labels = batch["labels"][0]
    assert (labels[:start] == IGNORE_INDEX).all()
    assert labels[start : start + len(text) + 1].tolist() == [*text, SPECIAL.eos]
    assert int(batch["lengths"][0]) == start + len(example.target)


def test_image_tasks_need_features_and_batches_do_not_mix():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="needs patch features"):
        build_example("image_to_text", [10, 11], SPECIAL, rng)
    a = build_example("image_to_text", [10, 11], SPECIAL, rng, patch_features=np.ones((4, 8)))
    b = build_example("language_modelling", [10, 11], SPECIAL, rng)
    with pytest.raises(ValueError, match="one task at a time"):
        collate([a, b], SPECIAL.pad)
