"""Human-score statistics: t intervals and Krippendorff's alpha against hand and textbook values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.evaluation.human import krippendorff_alpha, mean_with_ci

# --- mean with a t interval -----------------------------------------------------------------


def test_mean_with_ci_by_hand() -> None:
    # scores 1..5: mean 3, s² = (4+1+0+1+4)/4 = 2.5, sem = √2.5/√5 = √0.5 = 0.70711
    # t_{0.975, df=4} = 2.776445 -> half-width 2.776445 · 0.70711 = 1.963243
    result = mean_with_ci([1, 2, 3, 4, 5])
    assert result["mean"] == 3.0 and result["n"] == 5
    assert result["low"] == pytest.approx(3 - 1.963243, abs=1e-6)
    assert result["high"] == pytest.approx(3 + 1.963243, abs=1e-6)


def test_mean_with_ci_narrows_with_lower_confidence() -> None:
    # t_{0.95, df=4} = 2.131847 -> half-width 2.131847 · 0.70711 = 1.507443
    result = mean_with_ci([1, 2, 3, 4, 5], confidence=0.90)
    assert result["high"] == pytest.approx(3 + 1.507443, abs=1e-6)


def test_mean_with_ci_of_one_score_has_no_bounds() -> None:
    assert mean_with_ci([4.0]) == {"mean": 4.0, "low": None, "high": None, "n": 1}


def test_mean_with_ci_of_identical_scores_is_a_point() -> None:
    assert mean_with_ci([2, 2, 2]) == {"mean": 2.0, "low": 2.0, "high": 2.0, "n": 3}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 5, allow_nan=False), min_size=2, max_size=30))
def test_mean_with_ci_brackets_the_mean(scores: list[float]) -> None:
    result = mean_with_ci(scores)
    assert result["low"] <= result["mean"] + 1e-12 and result["mean"] <= result["high"] + 1e-12


def test_mean_with_ci_errors() -> None:
    with pytest.raises(ValueError, match="no scores"):
        mean_with_ci([])
    with pytest.raises(ValueError, match=r"scores\[1\] is nan"):
        mean_with_ci([1.0, math.nan])
    with pytest.raises(ValueError, match="confidence must lie in"):
        mean_with_ci([1.0, 2.0], confidence=95)


# --- Krippendorff's alpha -------------------------------------------------------------------

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example:
# 4 coders (A-D), 12 units, values 1-5, "." = missing. Unit 12 has one value and is unpairable.
_CLASSIC = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}
CLASSIC = {
    unit: {coder: values[unit] for coder, values in _CLASSIC.items() if values[unit] is not None}
    for unit in range(12)
}


@pytest.mark.parametrize(
    ("level", "published"),
    # the values the paper reports, to its three decimals
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_matches_the_textbook_example(level: str, published: float) -> None:
    assert krippendorff_alpha(CLASSIC, level=level) == pytest.approx(published, abs=5e-4)


def test_krippendorff_alpha_nominal_by_hand_with_labels() -> None:
    # 2 coders, 3 items: (good, good), (good, bad), (bad, bad)
    # coincidences: o_gg = 2, o_gb = o_bg = 1, o_bb = 2; n_g = n_b = 3, n = 6
    # D_o = (o_gb + o_bg) / n = 2/6; D_e = (n_g·n_b + n_b·n_g) / (n(n-1)) = 18/30
    # alpha = 1 - (1/3) / (3/5) = 4/9
    ratings = {
        "item-1": {"ann": "good", "bob": "good"},
        "item-2": {"ann": "good", "bob": "bad"},
        "item-3": {"ann": "bad", "bob": "bad"},
    }
    assert krippendorff_alpha(ratings, level="nominal") == pytest.approx(4 / 9)


def test_krippendorff_alpha_ordinal_accepts_sortable_labels() -> None:
    # ordinal alpha depends only on the order of values: letters a<b<c behave like 1<2<3
    letters = {u: {c: "abcde"[v - 1] for c, v in r.items()} for u, r in CLASSIC.items()}
    assert krippendorff_alpha(letters, "ordinal") == pytest.approx(
        krippendorff_alpha(CLASSIC, "ordinal"), rel=1e-12
    )


def test_krippendorff_alpha_of_perfect_agreement_is_one() -> None:
    ratings = {i: {"x": i % 5, "y": i % 5, "z": i % 5} for i in range(10)}
    ratings[10] = {"x": 3}  # an unpairable item changes nothing
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(ratings, level=level) == pytest.approx(1.0)


def test_krippendorff_alpha_treats_none_and_nan_as_missing() -> None:
    with_gaps = {u: {**r, "E": None, "F": math.nan} for u, r in CLASSIC.items()}
    assert krippendorff_alpha(with_gaps, "interval") == pytest.approx(
        krippendorff_alpha(CLASSIC, "interval"), rel=1e-12
    )


def test_krippendorff_alpha_is_none_when_undefined() -> None:
    # fewer than two items with two or more ratings
    assert krippendorff_alpha({}) is None
    assert krippendorff_alpha({"a": {"x": 1, "y": 2}, "b": {"x": 3}}) is None
    # no variation at all: expected disagreement 0, alpha = 0/0
    assert krippendorff_alpha({"a": {"x": 4, "y": 4}, "b": {"x": 4, "y": 4}}) is None


def test_krippendorff_alpha_errors() -> None:
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha(CLASSIC, level="cardinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval data must be numbers"):
        krippendorff_alpha({"a": {"x": "good", "y": "bad"}, "b": {"x": "bad", "y": "bad"}})
