"""Document-level quality statistics of cleaned text, vectorised over a batch.

Character repetition and special-character ratios follow Data-Juicer's definitions
(`character_repetition_filter`, `special_characters_filter`) so recipes carry over; the spam
lexicon is one RE2 alternation matched in C++ over the whole batch.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.codepoints import CodepointBatch

# Data-Juicer's SPECIAL_CHARACTERS: ASCII punctuation, digits, whitespace, emoji and a few
# decorative symbols. Chinese punctuation is not special there, and is not here.
_SPECIAL = set(string.punctuation + string.digits + string.whitespace)
_SPECIAL |= set("◆●■►▼▲▴∆▻▷❖♡□…‘’“”•·°«»")
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0xFE00, 0xFE0F), (0x1F1E6, 0x1F1FF))


_BUCKET_BITS = 20
_BUCKET_MIX = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1)
def _special_lut() -> np.ndarray:
    lut = np.zeros(0x110000, dtype=bool)
    for ch in _SPECIAL:
        lut[ord(ch)] = True
    for lo, hi in _EMOJI_RANGES:
        lut[lo : hi + 1] = True
    return lut


def special_character_ratio(batch: CodepointBatch) -> np.ndarray:
    """[n_docs] float64: the share of characters that are special (0 for empty documents)."""
    special = _special_lut()[batch.codes].astype(np.float64)
    counts = batch.per_doc_sum(special)
    return np.divide(counts, batch.lengths, out=np.zeros(batch.n_docs), where=batch.lengths > 0)


def character_repetition_ratio(batch: CodepointBatch, n: int) -> np.ndarray:
    """[n_docs] float64: Data-Juicer's repetition ratio of character n-grams.

    For each document: the counts of its distinct n-grams sorted descending; the top
    k = min(floor(sqrt(#distinct)), #distinct - #singletons) counts summed, divided by the
    number of n-grams. 0 for documents shorter than n.
    """
    hashes, doc = batch.window_hashes(n)
    ratio = np.zeros(batch.n_docs)
    if len(hashes) == 0:
        return ratio
    # one key per (document, n-gram); 20 bits of document index leave 44 of hash
    key = (doc.astype(np.uint64) << np.uint64(44)) | (hashes >> np.uint64(20))
    # Few n-grams repeat (under 1% in prose). A count over 2^20 buckets finds every key that
    # may repeat, and only those are sorted: 2x faster than sorting all keys.
    with np.errstate(over="ignore"):
        bucket = ((key * _BUCKET_MIX) >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
    maybe = key[np.bincount(bucket, minlength=1 << _BUCKET_BITS)[bucket] > 1]
    maybe.sort()
    windows = np.maximum(batch.lengths - n + 1, 0).astype(np.float64)  # n-grams per document
    if len(maybe) < 2:
        return ratio
    starts = np.flatnonzero(np.concatenate(([True], maybe[1:] != maybe[:-1])))
    counts = np.diff(np.concatenate((starts, [len(maybe)])))
    rep = counts > 1
    counts, gram_doc = counts[rep], (maybe[starts[rep]] >> np.uint64(44)).astype(np.int64)
    n_repeated = np.bincount(gram_doc, minlength=batch.n_docs)
    n_distinct = windows - np.bincount(gram_doc, weights=counts - 1, minlength=batch.n_docs)
    # k never exceeds the number of repeated n-grams, so only those need ranking
    order = np.lexsort((-counts, gram_doc))
    counts, gram_doc = counts[order], gram_doc[order]
    first = np.concatenate(([0], np.cumsum(n_repeated)[:-1]))
    rank = np.arange(len(counts)) - first[gram_doc]
    k = np.minimum(np.floor(np.sqrt(n_distinct)), n_repeated)
    top = rank < k[gram_doc]
    repeated = np.bincount(gram_doc, weights=counts * top, minlength=batch.n_docs)
    np.divide(repeated, windows, out=ratio, where=windows > 0)
    return ratio


def load_lexicon(path: str | Path) -> list[str]:
    """Spam/dirty words, one a line; blank lines and '#' comments ignored."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"spam lexicon {p} not found: set corpus.text_rules.lexicon_path in "
            "conf/<env>/parameters_corpus.yml to a UTF-8 file with one word per line"
        )
    words = []
    for line in p.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.append(word)
    return words


class LexiconMatcher:
    """Finds documents that contain any lexicon entry (case-insensitive for Latin letters)."""

    def __init__(self, words: list[str]):
        self.words = sorted(set(words), key=len, reverse=True)
        self._pattern = "(?i)(" + "|".join(re.escape(w) for w in self.words) + ")" if self.words else None

    def matches(self, arr: pa.Array) -> np.ndarray:
        """[n] bool: whether each row contains a lexicon entry (nulls never match)."""
        if self._pattern is None:
            return np.zeros(len(arr), dtype=bool)
        hit = pc.fill_null(pc.match_substring_regex(arr, self._pattern), False)
        return hit.to_numpy(zero_copy_only=False)

    def first_match(self, text: str) -> str | None:
        """The matched entry, for the quarantine detail column."""
        if self._pattern is None:
            return None
        m = re.search(self._pattern, text)
        return m.group(0) if m else None
