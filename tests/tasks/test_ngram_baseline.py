"""The prompted tasks' baseline: a token n-gram LM with interpolated Kneser-Ney smoothing,
trained on token ids as the pretraining shards hold them."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model.generation import Sampling
from m6_pipeline.tasks.ngram_baseline import NgramLM, sample, train_on_shards

V, BOS, EOS = 12, 0, 1

documents = st.lists(st.lists(st.integers(2, V - 1), min_size=1, max_size=20), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(documents, st.lists(st.integers(0, V - 1), max_size=6), st.integers(1, 4))
def test_every_context_gets_a_distribution_over_the_whole_vocabulary(docs, context, order):
    lm = NgramLM.train(docs, V, BOS, EOS, order)
    p = np.exp(lm.log_probs(context))
    assert p.shape == (V,) and np.all(p > 0)
    assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_a_seen_continuation_is_likely_and_text_beats_shuffled_text():
    rng = np.random.default_rng(0)
    docs = [[2, 3, 4, 5, 6, 7] for _ in range(50)] + [list(rng.integers(2, V, 6)) for _ in range(10)]
    lm = NgramLM.train(docs, V, BOS, EOS, order=3)
    assert np.exp(lm.log_probs([2, 3]))[4] > 0.8
    assert np.exp(lm.log_probs([6, 7]))[EOS] > 0.5  # documents end there
    text = lm.nll([[2, 3]], [[4, 5, 6, 7]])
    shuffled = lm.nll([[2, 3]], [[7, 5, 4, 6]])
    assert text < 0.5 < shuffled and shuffled < math.log(V) * 2


def test_an_unseen_context_falls_back_to_the_lower_orders():
    lm = NgramLM.train([[2, 3, 4]] * 5, V, BOS, EOS, order=3)
    # (9, 3) was never seen: the bigram after 3 decides
    assert np.argmax(lm.log_probs([9, 3])) == 4


def test_sampling_continues_a_prompt_and_stops_at_eos():
    lm = NgramLM.train([[2, 3, 4, 5]] * 20, V, BOS, EOS, order=3)
    out = sample(lm, [[2, 3], [2, 3]], max_new_tokens=10, sampling=Sampling("greedy"), seed=0)
    assert out == [[4, 5], [4, 5]]
    sampled = sample(lm, [[2]], max_new_tokens=3, sampling=Sampling("top_p", top_p=0.9), seed=1)
    assert len(sampled[0]) <= 3 and EOS not in sampled[0]


def test_it_trains_on_the_text_shards_and_says_what_to_run_without_them(tmp_path):
    (tmp_path / "text").mkdir()
    pq.write_table(pa.table({"id": ["a", "b"], "token_ids": [[2, 3, 4], [5, 6]]}), tmp_path / "text" / "train-00000.parquet")
    pq.write_table(pa.table({"id": ["c"], "token_ids": [[9, 9, 9]]}), tmp_path / "text" / "val-00000.parquet")
    lm = train_on_shards({"shard_dir": str(tmp_path)}, V, BOS, EOS)
    assert lm.n_train_tokens == 3 + 1 + 2 + 1  # the validation split is not trained on
    with pytest.raises(FileNotFoundError, match="pretrain_base"):
        train_on_shards({"shard_dir": str(tmp_path / "nowhere")}, V, BOS, EOS)
