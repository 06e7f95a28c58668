"""Character-level text metrics: hand-computed values, coco-caption's quirks, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.evaluation.text_metrics import (
    bleu4,
    characters,
    cider_d,
    distinct_n,
    rouge_l,
)

HAN = "今天天气很好不错我你他的了是吃看"
han_text = st.text(alphabet=HAN, min_size=1, max_size=20)


def test_characters_drop_whitespace_and_split_every_char() -> None:
    assert characters(" T恤 很\t好\n") == ["T", "恤", "很", "好"]
    assert characters("   ") == []


# --- BLEU-4 ---------------------------------------------------------------------------------


def test_bleu4_one_pair_by_hand() -> None:
    # hyp 今天天气很好 vs ref 今天天气不错 (6 chars each, so brevity penalty 1)
    # 1-grams: 今 天 天 气 match, 很 好 do not        -> 4/6
    # 2-grams: 今天 天天 天气 match of 5               -> 3/5
    # 3-grams: 今天天 天天气 match of 4                -> 2/4
    # 4-grams: 今天天气 matches of 3                   -> 1/3
    # BLEU = (4/6 · 3/5 · 2/4 · 1/3) ** (1/4) = (1/15) ** 0.25 = 0.50813...
    assert bleu4(["今天天气很好"], [["今天天气不错"]]) == pytest.approx((1 / 15) ** 0.25, rel=1e-6)


def test_bleu4_sums_counts_over_the_corpus_and_applies_one_brevity_penalty() -> None:
    # pair 1 as above: matches/total 4/6, 3/5, 2/4, 1/3; hyp 6 chars, ref 6
    # pair 2: 今天天气 vs 今天天气很好: 4/4, 3/3, 2/2, 1/1; hyp 4 chars, ref 6
    # corpus: 8/10, 6/8, 4/6, 2/4 -> product 0.8 · 0.75 · 2/3 · 0.5 = 0.2
    # c = 10, r = 12 -> BP = exp(1 - 12/10) = exp(-0.2)
    expected = math.exp(-0.2) * 0.2**0.25  # 0.54752
    score = bleu4(["今天天气很好", "今天天气"], [["今天天气不错"], ["今天天气很好"]])
    assert score == pytest.approx(expected, rel=1e-6)


def test_bleu4_is_zero_without_a_matching_4gram() -> None:
    # no smoothing: a zero 4-gram precision makes the geometric mean 0
    assert bleu4(["今天天"], [["今天天"]]) == 0.0


@settings(max_examples=30, deadline=None)
@given(text=st.text(alphabet=HAN, min_size=4, max_size=30))
def test_bleu4_of_an_exact_copy_is_one(text: str) -> None:
    assert bleu4([text], [[text]]) == pytest.approx(1.0, rel=1e-6)


# --- ROUGE-L --------------------------------------------------------------------------------


def test_rouge_l_by_hand_takes_best_precision_and_best_recall_separately() -> None:
    # hyp 今天天气很好 (6) vs ref A 今天天气不错 (6): LCS 今天天气 = 4 -> P 4/6, R 4/6
    #                    vs ref B 天气很好 (4):      LCS 天气很好 = 4 -> P 4/6, R 4/4
    # coco: P = max = 2/3, R = max = 1 (from different references)
    # F = (1 + 1.44) · 2/3 · 1 / (1 + 1.44 · 2/3) = (4.88/3) / 1.96 = 122/147
    # second hyp 你好 vs 再见 shares nothing -> 0; mean = 61/147 = 0.41497
    score = rouge_l(["今天天气很好", "你好"], [["今天天气不错", "天气很好"], ["再见"]])
    assert score == pytest.approx(61 / 147, rel=1e-12)


def test_rouge_l_of_an_empty_hypothesis_is_zero() -> None:
    assert rouge_l([""], [["天气很好"]]) == 0.0


@settings(max_examples=50, deadline=None)
@given(hyp=st.text(alphabet=HAN, max_size=20), refs=st.lists(han_text, min_size=1, max_size=3))
def test_rouge_l_lies_in_unit_interval(hyp: str, refs: list[str]) -> None:
    assert 0.0 <= rouge_l([hyp], [refs]) <= 1.0 + 1e-12


# --- CIDEr-D --------------------------------------------------------------------------------


def test_cider_d_by_hand() -> None:
    # N = 2 examples -> log N = ln 2; every reference n-gram (好 吃 好吃 | 难 看 难看) has df 1,
    # so idf = ln 2 - ln 1 = ln 2 for all of them, and for unseen ones (好看) too.
    # Example 1, 好吃 vs 好吃: 1-gram cosine 1, 2-gram cosine 1, no 3-/4-grams -> 0,
    #   same length -> penalty 1; 10 · mean(1, 1, 0, 0) = 5.0
    # Example 2, 好看 vs 难看: 1-grams {好, 看}·ln2 vs {难, 看}·ln2 -> cosine
    #   ln2² / (√2 ln2 · √2 ln2) = 1/2; 2-gram 好看 absent from the reference -> 0;
    #   10 · mean(1/2, 0, 0, 0) = 1.25
    # corpus: (5.0 + 1.25) / 2 = 3.125
    assert cider_d(["好吃", "好看"], [["好吃"], ["难看"]]) == pytest.approx(3.125, rel=1e-12)


def test_cider_d_length_penalty_by_hand() -> None:
    # Example 2 now 看 vs 难看: 1-gram cosine ln2² / (ln2 · √2 ln2) = 1/√2; the hypothesis has
    # no bigram -> 0. coco's length is the bigram count: 0 vs 1 -> Δ = -1,
    # penalty exp(-1 / (2 · 6²)) = exp(-1/72). Score 10 · (1/√2) · exp(-1/72) / 4.
    expected = (5.0 + 2.5 * math.exp(-1 / 72) / math.sqrt(2)) / 2  # 3.37169
    assert cider_d(["好吃", "看"], [["好吃"], ["难看"]]) == pytest.approx(expected, rel=1e-12)


def test_cider_d_averages_over_references() -> None:
    # Adding a reference that shares nothing with the hypothesis halves example 1's score:
    # df of 我/你/我你 is 1 like the rest, so idf and example 2 are unchanged.
    # (5.0 / 2 + 1.25) / 2 = 1.875
    score = cider_d(["好吃", "好看"], [["好吃", "我你"], ["难看"]])
    assert score == pytest.approx(1.875, rel=1e-12)


def test_cider_d_of_a_single_example_is_zero() -> None:
    # idf = log(1) - log(df) = 0 for every n-gram: CIDEr needs a corpus
    assert cider_d(["今天天气很好"], [["今天天气很好"]]) == 0.0


@settings(max_examples=30, deadline=None)
@given(refs=st.lists(st.text(alphabet=HAN, min_size=4, max_size=15), min_size=2, max_size=5))
def test_cider_d_prefers_a_copy_of_the_reference_to_an_unrelated_string(refs: list[str]) -> None:
    # Two anchor examples in other letters keep every Han n-gram's df below N (idf > 0): in a
    # corpus whose references all share the same n-grams CIDEr is 0 for everything.
    refs = [*refs, "QRST", "UVWX"]
    references = [[r] for r in refs]
    copy = cider_d(refs, references)
    unrelated = cider_d(["ABCDEFG"] * len(refs), references)
    assert copy > unrelated == 0.0


@settings(max_examples=30, deadline=None)
@given(
    hyps=st.lists(st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=12), min_size=2, max_size=4),
    ref=st.text(alphabet=HAN, min_size=1, max_size=12),
)
def test_cider_d_is_zero_without_shared_ngrams(hyps: list[str], ref: str) -> None:
    # hypotheses in Latin letters, references in Han characters: no n-gram in common
    references = [[ref]] * len(hyps)
    assert cider_d(hyps, references) == 0.0


# --- distinct-n -----------------------------------------------------------------------------


def test_distinct_n_by_hand() -> None:
    # 哈哈哈 + 哈哈: unigrams 5, distinct {哈} -> 1/5; bigrams 2 + 1 = 3, distinct {哈哈} -> 1/3
    # (n-grams do not span the two texts)
    assert distinct_n(["哈哈哈", "哈哈"], 1) == pytest.approx(1 / 5)
    assert distinct_n(["哈哈哈", "哈哈"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["今天 天气"], 2) == pytest.approx(1.0)  # 今天 天天 天气: all distinct
    assert distinct_n(["好"], 2) == 0.0


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(st.text(alphabet=HAN + " ", max_size=20), max_size=5), n=st.integers(1, 4))
def test_distinct_n_lies_in_unit_interval(texts: list[str], n: int) -> None:
    assert 0.0 <= distinct_n(texts, n) <= 1.0


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [bleu4, rouge_l, cider_d])
def test_mismatched_lengths_are_rejected(metric) -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference lists"):
        metric(["好", "吃"], [["好"]])


@pytest.mark.parametrize("metric", [bleu4, rouge_l, cider_d])
def test_missing_or_empty_references_are_rejected(metric) -> None:
    with pytest.raises(ValueError, match=r"references\[1\] is empty"):
        metric(["好", "吃"], [["好"], []])
    with pytest.raises(ValueError, match=r"references\[0\]\[1\] has no characters"):
        metric(["好"], [["好", "  "]])
    with pytest.raises(ValueError, match=r"references\[0\] is a string"):
        metric(["好"], ["好"])
    with pytest.raises(ValueError, match="corpus is empty"):
        metric([], [])


def test_distinct_n_rejects_n_below_one() -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        distinct_n(["好"], 0)
