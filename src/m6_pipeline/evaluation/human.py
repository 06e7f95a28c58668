"""Statistics over human judgements of generated text and images (§4.2-4.6).

The paper compares systems by human scores (e.g. 1-5 ratings of fluency or relevance). A mean
alone hides how few judgements stand behind it, so a mean is reported with a Student's t
confidence interval; and a score is only as good as the annotators' agreement, reported as
Krippendorff's alpha (from the `krippendorff` package), which allows any number of annotators,
missing ratings, and nominal, ordinal, interval or ratio scales.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any, Literal, TypedDict

import krippendorff
import numpy as np
from scipy import stats

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval", "ratio")


class MeanInterval(TypedDict):
    """A sample mean and its two-sided confidence interval; `low`/`high` are None for n < 2."""

    mean: float
    low: float | None
    high: float | None
    n: int


def mean_with_ci(scores: list[float], confidence: float = 0.95) -> MeanInterval:
    """The mean of `scores` with a two-sided Student's t confidence interval.

    The interval is `mean ± t_{(1+confidence)/2, n-1} · s / sqrt(n)` with `s` the sample
    standard deviation (ddof = 1). One score gives no estimate of spread, so for n = 1 the bounds
    are None rather than a misleading zero-width interval; identical scores (s = 0) give
    low = high = mean. Raises ValueError for no scores, a non-finite score, or a confidence
    outside (0, 1).
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"mean_with_ci: confidence must lie in (0, 1), got {confidence}")
    if len(scores) == 0:
        raise ValueError("mean_with_ci: no scores; a mean needs at least one")
    values = np.asarray(scores, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"mean_with_ci: scores[{bad[0]}] is {values[bad[0]]}; "
            "drop missing or invalid scores first"
        )
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return MeanInterval(mean=mean, low=None, high=None, n=n)
    sem = float(values.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, df=n - 1)) * sem
    return MeanInterval(mean=mean, low=mean - half, high=mean + half, n=n)


def _is_missing(value: Any) -> bool:
    """A skipped rating: None, or NaN as pandas and numpy write one."""
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _encode(values: list[Any], level: Level) -> dict[Any, float]:
    """Map the observed values to the numbers the package computes on.

    Nominal values may be any hashable labels (coded by first appearance); ordinal values any
    sortable ones (coded by rank: the ordinal metric depends only on order and frequencies);
    interval and ratio values must be real numbers and are kept as they are.
    """
    distinct = list(dict.fromkeys(values))
    if level == "nominal":
        return {v: float(i) for i, v in enumerate(distinct)}
    if level == "ordinal":
        try:
            ranked = sorted(distinct)
        except TypeError as err:
            raise ValueError(
                f"krippendorff_alpha: ordinal values must be comparable: {err}"
            ) from err
        return {v: float(i) for i, v in enumerate(ranked)}
    codes: dict[Any, float] = {}
    for v in distinct:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(
                f"krippendorff_alpha: {level} data must be numbers, got {v!r}; "
                "use level='nominal' or 'ordinal' for labels"
            )
        codes[v] = float(v)
    return codes


def krippendorff_alpha(
    ratings: Mapping[Hashable, Mapping[Hashable, Any]], level: Level = "interval"
) -> float | None:
    """Krippendorff's alpha of agreement between annotators, in [-1, 1] (1: perfect).

    `ratings` maps each item id to `{annotator id: value}`; an annotator may skip items, and a
    None or NaN value counts as missing. Items with fewer than two ratings carry no pairs and
    are ignored, as in Krippendorff's definition.

    Returns None when alpha is undefined: fewer than two items rated by two or more annotators,
    or all paired ratings equal (no variation, so expected disagreement is 0 and alpha is 0/0).
    Raises ValueError for an unknown `level` or values that do not fit it.
    """
    if level not in LEVELS:
        raise ValueError(f"krippendorff_alpha: level must be one of {LEVELS}, got {level!r}")
    items = {
        item: {a: v for a, v in by_annotator.items() if not _is_missing(v)}
        for item, by_annotator in ratings.items()
    }
    pairable = {item: r for item, r in items.items() if len(r) >= 2}
    if len(pairable) < 2:
        return None
    codes = _encode([v for r in pairable.values() for v in r.values()], level)
    if len(set(codes.values())) < 2:
        return None
    annotators = list(dict.fromkeys(a for r in pairable.values() for a in r))
    row = {a: i for i, a in enumerate(annotators)}
    data = np.full((len(annotators), len(pairable)), np.nan)  # [annotators, items]
    for col, r in enumerate(pairable.values()):
        for a, v in r.items():
            data[row[a], col] = codes[v]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
