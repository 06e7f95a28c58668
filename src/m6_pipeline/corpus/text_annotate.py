"""One pass over a batch of text records: normalise, apply every per-document rule, score
perplexity, and attach the keys that the global deduplication needs.

The first failing rule names the record's `reason`; records that pass keep `reason` null and
carry their exact-duplicate hash and MinHash signature. Nothing is dropped here: routing into
the clean corpus or quarantine happens after the global deduplication.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.corpus.config import NearDuplicates, PerplexityFilter, TextRules
from m6_pipeline.corpus.language_model import CharBigramLM
from m6_pipeline.corpus.near_duplicates import MinHasher
from m6_pipeline.corpus.reasons import Reason
from m6_pipeline.corpus.text_filters import (
    LexiconMatcher,
    character_repetition_ratio,
    special_character_ratio,
)
from m6_pipeline.corpus.text_normalise import normalise_text


# signatures by exact text hash, per MinHasher (frozen dataclass: hashable by its parameters)
_SIGNATURE_CACHES: dict[MinHasher, OrderedDict[int, np.ndarray]] = {}


def annotated_schema(num_perm: int) -> pa.Schema:
    return pa.schema([
        ("id", pa.large_string()),
        ("source", pa.large_string()),
        ("title", pa.large_string()),
        ("text", pa.large_string()),
        ("order", pa.int64()),
        ("reason", pa.large_string()),
        ("detail", pa.large_string()),
        ("n_chars", pa.int32()),
        ("perplexity", pa.float32()),
        ("exact_hash", pa.uint64()),
        ("minhash", pa.list_(pa.uint32(), num_perm)),
    ])


def _first_reason(reason: np.ndarray, detail: np.ndarray, hit: np.ndarray, name: Reason, details) -> None:
    """Set `name` on rows that fail now and had no earlier reason (first failing rule wins)."""
    new = hit & pd.isna(reason)
    if new.any():
        reason[new] = str(name)
        detail[new] = details(np.flatnonzero(new)) if callable(details) else details


class TextAnnotator:
    """Callable over `pa.Table` batches (a Ray Data `map_batches` UDF or a plain function).

    Holds the lexicon, the perplexity LM and a bounded, process-wide cache of signatures by
    exact hash: the cache changes speed only, never results (a signature is a function of
    the text), and repeated texts across tasks are hashed once per worker.
    """

    def __init__(self, rules: TextRules, lexicon: list[str], lm: CharBigramLM | None,
                 perplexity: PerplexityFilter, near: NearDuplicates, cache_size: int = 200_000):
        self.rules = rules
        self.lexicon = LexiconMatcher(lexicon)
        self.lm = lm if perplexity.enabled else None
        self.max_perplexity = perplexity.max_perplexity
        self.hasher = MinHasher(near.num_perm, near.shingle_chars, near.seed) if near.enabled else None
        self.num_perm = near.num_perm
        # one cache per worker process and hasher, so it survives from one Ray task to the next
        self._cache = _SIGNATURE_CACHES.setdefault(self.hasher, OrderedDict()) if self.hasher else OrderedDict()
        self._cache_size = cache_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        n = batch.num_rows
        reason = np.array(batch.column("reason").to_pylist(), dtype=object)
        detail = np.array(batch.column("detail").to_pylist(), dtype=object)
        text = normalise_text(batch.column("text").combine_chunks(), simplified=self.rules.to_simplified)
        title = normalise_text(batch.column("title").combine_chunks(), simplified=self.rules.to_simplified)
        text_py = [t or "" for t in text.to_pylist()]
        n_chars = np.fromiter((len(t) for t in text_py), dtype=np.int64, count=n)

        title_len = pc.fill_null(pc.utf8_length(title), -1).to_numpy(zero_copy_only=False)
        _first_reason(reason, detail, (title_len >= 0) & (title_len < self.rules.min_title_chars),
                      Reason.TITLE_TOO_SHORT, f"title shorter than {self.rules.min_title_chars} characters")
        _first_reason(reason, detail, n_chars < self.rules.min_text_chars, Reason.TEXT_TOO_SHORT,
                      lambda rows: [f"{n_chars[r]} characters after cleaning" for r in rows])

        codes = CodepointBatch.from_strings(text_py)
        repetition = character_repetition_ratio(codes, self.rules.repetition_ngram)
        _first_reason(reason, detail, repetition > self.rules.max_repetition_ratio,
                      Reason.CHARACTER_REPETITION, lambda rows: [f"ratio {repetition[r]:.3f}" for r in rows])
        special = special_character_ratio(codes)
        _first_reason(reason, detail, special > self.rules.max_special_ratio,
                      Reason.SPECIAL_CHARACTERS, lambda rows: [f"ratio {special[r]:.3f}" for r in rows])
        spam = self.lexicon.matches(text) | self.lexicon.matches(title)
        _first_reason(reason, detail, spam, Reason.SPAM_LEXICON,
                      lambda rows: [f"contains {self.lexicon.first_match(text_py[r])!r}" for r in rows])

        perplexity = np.full(n, np.nan)
        if self.lm is not None:
            perplexity = self.lm.perplexity(codes)
            _first_reason(reason, detail, perplexity > self.max_perplexity, Reason.PERPLEXITY,
                          lambda rows: [f"perplexity {perplexity[r]:.0f}" for r in rows])

        kept = np.flatnonzero(pd.isna(reason))
        exact = pd.util.hash_array(np.array(text_py, dtype=object)).astype(np.uint64)
        minhash = self._signatures(text_py, exact, kept)
        return pa.Table.from_arrays([
            batch.column("id"), batch.column("source"), title, text, batch.column("order"),
            pa.array(reason, type=pa.large_string()), pa.array(detail, type=pa.large_string()),
            pa.array(n_chars, type=pa.int32()), pa.array(perplexity, type=pa.float32(), from_pandas=True),
            pa.array(exact, type=pa.uint64()), minhash,
        ], schema=annotated_schema(self.num_perm))

    def _signatures(self, texts: list[str], exact: np.ndarray, kept: np.ndarray) -> pa.Array:
        """MinHash signatures of the kept rows (null elsewhere), computed once per distinct text."""
        sig = np.zeros((len(texts), self.num_perm), dtype=np.uint32)
        if self.hasher is not None and len(kept):
            fresh_rows: dict[int, int] = {}
            for r in kept:
                if int(exact[r]) not in self._cache:
                    fresh_rows.setdefault(int(exact[r]), r)
            fresh: dict[int, np.ndarray] = {}
            if fresh_rows:
                rows = list(fresh_rows.values())
                computed = self.hasher.signatures(CodepointBatch.from_strings([texts[r] for r in rows]))
                fresh = dict(zip(fresh_rows, computed))
            for r in kept:
                key = int(exact[r])
                sig[r] = fresh[key] if key in fresh else self._cache[key]
            self._cache.update(fresh)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        flat = pa.array(sig.reshape(-1), type=pa.uint32())
        mask = np.ones(len(texts), dtype=bool)
        if self.hasher is not None:
            mask[kept] = False
        return pa.FixedSizeListArray.from_arrays(flat, self.num_perm, mask=pa.array(mask))
