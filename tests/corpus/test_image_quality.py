"""Quality score calibration, pluggable scorers/classifiers, perceptual hashes, and the
banded near-duplicate grouping checked against a brute-force O(n^2) reference."""

from __future__ import annotations

import pickle
import time
import uuid

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from m6_pipeline.corpus import image_quality
from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.image_quality import (
    heuristic_quality,
    load_content_classifier,
    load_quality_scorer,
    near_duplicate_representatives,
    perceptual_hash,
)

MIN_QUALITY = ImageRules().min_quality


def _drawing(side: int = 128, seed: int = 0) -> Image.Image:
    """A red disc with a dark outline on white, with mild pixel texture (a product shot)."""
    img = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(img).ellipse([side * 0.2, side * 0.2, side * 0.8, side * 0.8],
                                fill=(220, 60, 40), outline=(80, 20, 10), width=2)
    rng = np.random.default_rng(seed)
    pixels = np.asarray(img).astype(int) + rng.integers(-12, 13, (side, side, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("colour", [(0, 0, 0), (128, 128, 128), (255, 255, 255), (200, 30, 30)])
def test_uniform_image_scores_below_0_1(colour):
    scores = heuristic_quality(Image.new("RGB", (128, 128), colour))
    assert scores["quality"] < 0.1
    assert scores == {"sharpness": 0.0, "contrast": 0.0, "entropy": 0.0, "quality": 0.0}


def test_drawing_on_white_scores_high_and_reports_components():
    scores = heuristic_quality(_drawing())
    assert scores["quality"] > 0.4
    assert set(scores) == {"sharpness", "contrast", "entropy", "quality"}
    assert 0.0 <= scores["entropy"] <= 8.0 and 0.0 <= scores["contrast"] <= 127.5


def test_blur_lowers_the_score_and_heavy_blur_falls_below_the_threshold():
    sharp = heuristic_quality(_drawing())["quality"]
    blurred = [heuristic_quality(_drawing().filter(ImageFilter.GaussianBlur(r)))["quality"]
               for r in (1, 2, 8)]
    assert sharp > blurred[0] > blurred[1] > blurred[2]
    assert blurred[2] < MIN_QUALITY


def test_tiny_contrast_scores_below_the_threshold():
    rng = np.random.default_rng(0)
    faint = (128 + rng.integers(-3, 4, (128, 128))).astype(np.uint8)  # +-3 grey levels of noise
    assert heuristic_quality(Image.fromarray(faint).convert("RGB"))["quality"] < MIN_QUALITY


def test_large_images_are_scored_at_the_working_size():
    big = _drawing(1024)
    assert abs(heuristic_quality(big)["quality"] - heuristic_quality(_drawing(512))["quality"]) < 0.1


def _plugin_module(tmp_path, monkeypatch, source: str) -> str:
    name = f"quality_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


PLUGIN = """
import numpy as np

def brightness(img):
    return float(np.asarray(img.convert("L")).mean() / 255)

def broken(img):
    return 1.5

class Models:
    @staticmethod
    def red_filter(img):
        r, g, b = np.asarray(img, dtype=float).reshape(-1, 3).mean(axis=0)
        return (False, f"too red (mean R {r:.0f})") if r > g + b else (True, "")

NOT_CALLABLE = 3
"""


def test_user_scorer_is_loaded_from_module_callable(tmp_path, monkeypatch):
    module = _plugin_module(tmp_path, monkeypatch, PLUGIN)
    scorer = load_quality_scorer(f"{module}:brightness")
    assert scorer(Image.new("RGB", (80, 80), "white")) == {"quality": 1.0}
    assert scorer(Image.new("RGB", (80, 80), "black")) == {"quality": 0.0}
    assert pickle.loads(pickle.dumps(scorer))(Image.new("RGB", (80, 80), "white"))["quality"] == 1.0
    assert load_quality_scorer("heuristic") is heuristic_quality
    with pytest.raises(ValueError, match=r"must return a float in \[0, 1\]"):
        load_quality_scorer(f"{module}:broken")(Image.new("RGB", (80, 80)))


@pytest.mark.parametrize("spec, hint", [
    ("heuristik", "package.module:callable"), ("no_such_module_m6:f", "cannot import"),
    ("os:no_such_function", "no attribute"), ("os:sep", "not callable"), (":f", "package.module"),
    ("os:", "package.module"),
])
def test_bad_scorer_spec_names_the_spec_and_the_expected_form(spec, hint):
    with pytest.raises(ValueError) as info:
        load_quality_scorer(spec)
    message = str(info.value)
    assert repr(spec) in message and "package.module:callable" in message and hint in message


def test_content_classifier_none_accepts_and_user_classifier_rejects(tmp_path, monkeypatch):
    assert load_content_classifier(None)(Image.new("RGB", (80, 80), "red")) == (True, "")
    module = _plugin_module(tmp_path, monkeypatch, PLUGIN)
    classify = load_content_classifier(f"{module}:Models.red_filter")
    assert classify(Image.new("RGB", (80, 80), "blue")) == (True, "")
    ok, detail = classify(Image.new("RGB", (80, 80), "red"))
    assert not ok and "too red" in detail
    with pytest.raises(ValueError, match="image_rules.content_classifier"):
        load_content_classifier(f"{module}:NOT_CALLABLE")


def _clouds(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (128, 128), Image.Resampling.BICUBIC)


def test_perceptual_hash_is_imagehash_phash_as_uint64():
    img = _clouds(0)
    value = perceptual_hash(img)
    assert value == int(str(imagehash.phash(img)), 16)
    assert 0 <= value < 2**64 and np.uint64(value) == value
    assert (value ^ perceptual_hash(img.resize((200, 200)))).bit_count() <= 4  # same picture
    assert (value ^ perceptual_hash(_clouds(1))).bit_count() > 4  # another picture


def _brute_force_representatives(hashes: np.ndarray, d: int) -> np.ndarray:
    """Reference: all pairs (O(n^2)), clusters by flood fill from the lowest index."""
    n = len(hashes)
    close = np.bitwise_count(hashes[:, None] ^ hashes[None, :]) <= d
    rep = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if rep[i] >= 0:
            continue
        rep[i], stack = i, [i]
        while stack:
            for k in np.flatnonzero(close[stack.pop()] & (rep < 0)):
                rep[k] = i
                stack.append(k)
    return rep


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 150), d=st.integers(0, 12),
       planted=st.integers(0, 100), free_bits=st.sampled_from([64, 12]),
       edge_buffer=st.sampled_from([1_000_000, 0]), sort_cost=st.sampled_from([8.0, 0.0]))
def test_near_duplicates_match_brute_force(seed, n, d, planted, free_bits, edge_buffer, sort_cost):
    """free_bits=12: hashes live on 12 random bits, so bands collide in long runs and exact
    duplicates abound; edge_buffer=0: links are collapsed after every key; sort_cost=0: keys
    of several bands (B > d + 1) are chosen even for small n."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64, endpoint=False)
    if free_bits < 64:
        mask = sum(1 << int(b) for b in rng.choice(64, size=free_bits, replace=False))
        hashes &= np.uint64(mask)
    for _ in range(min(planted, n)):  # copies of an earlier hash with <= d + 1 bits flipped
        src, dst = rng.integers(0, n, 2)
        flips = rng.choice(64, size=int(rng.integers(0, min(d + 2, 64) + 1)), replace=False)
        hashes[dst] = hashes[src] ^ np.uint64(int(sum(1 << int(f) for f in flips)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(image_quality, "_EDGE_BUFFER", edge_buffer)
        patch.setattr(image_quality, "_SORT_COST", sort_cost)
        got = near_duplicate_representatives(hashes, d)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _brute_force_representatives(hashes, d))


def test_near_duplicate_edge_cases():
    h = np.array([5, 5, 4, 2**63, 7], dtype=np.uint64)
    assert near_duplicate_representatives(np.zeros(0, np.uint64), 4).shape == (0,)
    np.testing.assert_array_equal(near_duplicate_representatives(h, 0), [0, 0, 2, 3, 4])
    np.testing.assert_array_equal(near_duplicate_representatives(h, 1), [0, 0, 0, 3, 0])
    np.testing.assert_array_equal(near_duplicate_representatives(h, 64), [0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="phash_max_distance"):
        near_duplicate_representatives(h, -1)


def test_near_duplicates_scale_to_many_hashes():
    rng = np.random.default_rng(7)
    n = 200_000
    hashes = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    hashes[n // 2: n // 2 + 500] = hashes[:500] ^ np.uint64(0b1001)  # 500 planted pairs, 2 bits
    started = time.perf_counter()
    rep = near_duplicate_representatives(hashes, 4)
    assert time.perf_counter() - started < 10
    dup = np.flatnonzero(rep != np.arange(n))
    np.testing.assert_array_equal(dup, np.arange(n // 2, n // 2 + 500))
    np.testing.assert_array_equal(rep[dup], np.arange(500))
