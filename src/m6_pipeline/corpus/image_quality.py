"""Image quality, content screening and perceptual hashes (§2.3: "a pretrained image scorer
evaluates the qualities of images"; "classifiers and heuristic rules filter out images
containing illegal content").

The built-in scorer is a heuristic stand-in for the paper's pretrained scorer; a trained model
plugs in through `ImageRules.quality_scorer = "package.module:callable"`, and a content
classifier through `ImageRules.content_classifier`. Images whose 64-bit perceptual hashes lie
within a Hamming distance are grouped by `near_duplicate_representatives`.
"""

from __future__ import annotations

import importlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from m6_pipeline.corpus.images import normalise_to_rgb

_WORKING_SIDE = 512  # longest side the heuristic looks at: sharpness depends on scale
# Saturation scales of the three components, calibrated on synthetic drawings, blurred and
# faint images, and the catalogue renders: a component at its scale gates to 1 - 1/e = 0.63.
_SHARPNESS_SCALE = 100.0  # Laplacian variance, grey levels^2
_CONTRAST_SCALE = 20.0  # grey-level std
_ENTROPY_SCALE = 1.0  # bits
_WEIGHTS = (0.5, 1.0, 0.25)  # exponents of the sharpness, contrast, entropy gates

_EDGE_BUFFER = 1_000_000  # verified links held before they are collapsed to one per image
# Near-duplicate key choice: sorting one hash by one key costs about as much as verifying 8
# candidate pairs (measured with numpy 2.4: argsort+gathers ~70 ns, XOR+popcount ~10 ns).
_SORT_COST = 8.0
_MAX_EXTRA_BANDS = 8
_MAX_KEYS = 2000

QualityScores = dict[str, float]


def heuristic_quality(img: Image.Image) -> QualityScores:
    """Quality in [0, 1] from sharpness, contrast and entropy of the grey image.

    Returns {"sharpness": variance of the 4-neighbour Laplacian (grey levels^2),
    "contrast": grey-level std (0..127.5), "entropy": grey histogram entropy (bits, 0..8),
    "quality": product of the gates (1 - exp(-component / scale)) ** exponent}. A product so one
    failing component (flat, washed out, or blurred) pulls the whole score down; contrast has
    the largest exponent because faint noise can look "sharp" to the Laplacian.
    `img` is decode_image's RGB; any other mode is normalised the same way first.
    Calibration (128 px): uniform 0.00, +-3 grey noise 0.07, drawing on white 0.97, Gaussian
    blur r=2 / r=8 of it 0.31 / 0.12, catalogue product renders 0.57..0.98 (median 0.86).
    """
    if img.mode not in ("RGB", "L"):  # e.g. 16-bit grey straight from Image.open: a plain
        img = normalise_to_rgb(img)  # convert("L") clips it to white and scores 0.000
    grey = img.convert("L")
    if max(grey.size) > _WORKING_SIDE:
        grey = grey.copy()
        grey.thumbnail((_WORKING_SIDE, _WORKING_SIDE), Image.Resampling.BOX)
    g = np.asarray(grey, dtype=np.float64)  # [height, width]
    sharpness = _laplacian_variance(g)
    contrast = float(g.std())
    counts = np.bincount(np.asarray(grey).ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no "-0.0" for flat images
    parts = (sharpness / _SHARPNESS_SCALE, contrast / _CONTRAST_SCALE, entropy / _ENTROPY_SCALE)
    quality = float(np.prod([(1.0 - np.exp(-x)) ** w for x, w in zip(parts, _WEIGHTS)]))
    return {"sharpness": sharpness, "contrast": contrast, "entropy": entropy, "quality": quality}


def _laplacian_variance(g: np.ndarray) -> float:
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]) - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def _import_callable(spec: str, setting: str, expected: str) -> Callable:
    """'package.module:attr.path' -> the object; ValueError naming the spec and the form."""
    form = (f"{setting} must be 'package.module:callable' ({expected}), got {spec!r}")
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name.strip() or not attr_path.strip():
        raise ValueError(form)
    try:
        obj = importlib.import_module(module_name.strip())
    except ImportError as exc:
        raise ValueError(f"{form}: cannot import module {module_name!r} ({exc}); check the "
                         "spelling and that the package is installed in every Ray worker") from None
    for attr in attr_path.strip().split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ValueError(f"{form}: module {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(obj):
        # ValueError like every other bad spec: the config value is wrong, not a caller's type
        raise ValueError(  # noqa: TRY004
            f"{form}: {attr_path!r} in {module_name!r} is a {type(obj).__name__}, not callable")
    return obj


@dataclass(frozen=True)
class _UserScorer:
    """A user scorer PIL.Image -> float in [0, 1], reported as {"quality": score}."""

    spec: str
    fn: Callable[[Image.Image], float]

    def __call__(self, img: Image.Image) -> QualityScores:
        score = float(self.fn(img))
        if not 0.0 <= score <= 1.0:  # NaN fails this too
            raise ValueError(f"quality scorer {self.spec!r} returned {score}; it must return a "
                             "float in [0, 1]")
        return {"quality": score}


def load_quality_scorer(spec: str) -> Callable[[Image.Image], QualityScores]:
    """ImageRules.quality_scorer -> a picklable callable RGB image -> dict with "quality".

    "heuristic": `heuristic_quality` (also reports sharpness, contrast, entropy).
    "package.module:callable": a user scorer (e.g. a trained aesthetic model) returning a
    float in [0, 1]. Raises ValueError naming the spec and the expected form.
    """
    if spec.strip() == "heuristic":
        return heuristic_quality
    fn = _import_callable(spec, "image_rules.quality_scorer",
                          "'heuristic' or a callable PIL.Image -> float in [0, 1]")
    return _UserScorer(spec, fn)


def accept_all_content(img: Image.Image) -> tuple[bool, str]:
    """The content classifier when none is configured: every image passes."""
    return True, ""


@dataclass(frozen=True)
class _UserClassifier:
    """A user classifier PIL.Image -> (ok, detail); `ok` False maps to IMAGE_CONTENT_REJECTED."""

    spec: str
    fn: Callable[[Image.Image], tuple[bool, str]]

    def __call__(self, img: Image.Image) -> tuple[bool, str]:
        result = self.fn(img)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise ValueError(f"content classifier {self.spec!r} returned {result!r}; it must "
                             "return a tuple (ok: bool, detail: str)")
        ok, detail = result
        return bool(ok), str(detail) if detail is not None else ""


def load_content_classifier(spec: str | None) -> Callable[[Image.Image], tuple[bool, str]]:
    """ImageRules.content_classifier -> a picklable callable RGB image -> (ok, detail).

    None: accept everything. "package.module:callable": the user's classifier; the caller maps
    ok=False to Reason.IMAGE_CONTENT_REJECTED with `detail`. Raises ValueError on a bad spec.
    """
    if spec is None:
        return accept_all_content
    fn = _import_callable(spec, "image_rules.content_classifier",
                          "a callable PIL.Image -> (ok: bool, detail: str), or null for none")
    return _UserClassifier(spec, fn)


def perceptual_hash(img: Image.Image) -> int:
    """imagehash.phash (8x8 DCT bits, row-major, first bit most significant) as an unsigned
    64-bit int, ready for a uint64 column."""
    bits = imagehash.phash(img).hash.ravel()  # [64] bool
    return int(np.packbits(bits).view(">u8")[0])


def near_duplicate_representatives(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """For each of `hashes` ([n] uint64), the index of the first image of its cluster: [n] int64.

    Two images are linked when their hashes differ in at most `max_distance` (d) bits; clusters
    are the connected components of those links, and the representative is the lowest index
    (the first in corpus order), so `rep[i] == i` for every image kept.

    Candidates come from pigeonhole banding: split the 64 bits into B >= d + 1 contiguous bands;
    two hashes within d bits differ in at most d bands, so they agree exactly on at least B - d
    of them, hence on one of the C(B, B - d) keys made of B - d bands. B = d + 1 is the classic
    scheme (d + 1 one-band keys); for large n a larger B (longer keys, fewer chance candidates,
    more sorts) is chosen by a cost model, e.g. B = 6 for n = 1e6, d = 4. Exact duplicates are
    merged first; per key, hashes are sorted by key and each equal-key run is scanned by offset
    (position p against p + k), so memory stays O(n) however many candidates there are; each
    candidate is verified by the popcount of the XOR. Cost: O(keys * n log n) plus the number of
    candidates; a key value shared by a very large run costs quadratic time in that run.
    """
    hashes = np.asarray(hashes, dtype=np.uint64).reshape(-1)
    n = len(hashes)
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0 (image_rules.phash_max_distance), got {max_distance}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if max_distance >= 64:  # every pair of 64-bit hashes is within 64 bits
        return np.zeros(n, dtype=np.int64)
    unique, first_index, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    labels = _link_components(unique, max_distance)  # [m] component of each distinct hash
    first = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, labels, first_index.astype(np.int64))
    return first[labels[inverse.reshape(-1)]]


def _key_masks(max_distance: int, m: int) -> list[np.uint64]:
    """The uint64 masks of the keys (unions of B - d bands) every close pair agrees on one of.

    B minimises keys * (m * _SORT_COST + expected chance candidates per key), the expectation
    taken for uniform hashes: m^2 / 2 / 2^(key bits).
    """
    d = max_distance
    best: tuple[float, int] | None = None
    for bands in range(d + 1, min(64, d + 1 + _MAX_EXTRA_BANDS) + 1):
        keys = math.comb(bands, bands - d)
        if keys > _MAX_KEYS and best is not None:
            break
        key_bits = 64.0 * (bands - d) / bands
        cost = keys * (m * _SORT_COST + m * m / 2.0 / 2.0**key_bits)
        if best is None or cost < best[0]:
            best = (cost, bands)
    bands = best[1]
    widths = [64 // bands + (1 if b < 64 % bands else 0) for b in range(bands)]
    starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
    band_masks = [((1 << w) - 1) << int(s) for s, w in zip(starts, widths)]
    return [np.uint64(sum(band_masks[b] for b in combo))
            for combo in itertools.combinations(range(bands), bands - d)]


def _link_components(unique: np.ndarray, max_distance: int) -> np.ndarray:
    """[m] connected-component labels of distinct hashes linked within `max_distance` bits."""
    m = len(unique)
    edge_rows: list[np.ndarray] = []
    edge_cols: list[np.ndarray] = []
    buffered = 0
    for mask in _key_masks(max_distance, m):
        key = unique & mask
        order = np.argsort(key)
        sorted_key, sorted_hash = key[order], unique[order]
        run_starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        run_ends = np.r_[run_starts[1:], m]
        run_end = np.repeat(run_ends, run_ends - run_starts)  # [m] end of each position's run
        remaining = run_end - np.arange(m)
        active = np.flatnonzero(remaining > 1)
        k = 1
        while len(active):  # candidates (p, p + k) inside one run, for k = 1, 2, ...
            partner = active + k
            close = np.bitwise_count(sorted_hash[active] ^ sorted_hash[partner]) <= max_distance
            if close.any():
                edge_rows.append(order[active[close]])
                edge_cols.append(order[partner[close]])
                buffered += int(close.sum())
            k += 1
            active = active[remaining[active] > k]
        if buffered > 4 * m + _EDGE_BUFFER:  # keep edge memory O(m): collapse to stars
            edge_rows, edge_cols = _collapse(m, edge_rows, edge_cols)
            buffered = len(edge_rows[0])
    return _components(m, edge_rows, edge_cols)


def _components(m: int, rows: list[np.ndarray], cols: list[np.ndarray]) -> np.ndarray:
    if not rows:
        return np.arange(m, dtype=np.int64)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=bool), (r, c)), shape=(m, m)).tocsr()
    return connected_components(graph, directed=False)[1].astype(np.int64)


def _collapse(m: int, rows: list[np.ndarray], cols: list[np.ndarray]):
    """Replace the edges by one edge from each node to the first node of its component."""
    labels = _components(m, rows, cols)
    root = np.full(labels.max() + 1, m, dtype=np.int64)
    np.minimum.at(root, labels, np.arange(m, dtype=np.int64))
    node = np.flatnonzero(root[labels] != np.arange(m))
    return [node], [root[labels[node]]]
