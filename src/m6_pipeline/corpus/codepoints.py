"""A batch of strings as one flat array of Unicode code points, for vectorised text statistics.

Per-document Python loops cost tens of microseconds a document; the corpus rules that need
character-level statistics (repetition, special characters, shingles, LM scores) run instead
on one `uint32` array per batch with a document index beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: spreads small code points


@dataclass(frozen=True)
class CodepointBatch:
    """`codes[starts[d]:starts[d] + lengths[d]]` are the code points of document `d`."""

    codes: np.ndarray  # [total_chars] uint32
    starts: np.ndarray  # [n_docs] int64
    lengths: np.ndarray  # [n_docs] int64

    @classmethod
    def from_strings(cls, texts: list[str]) -> CodepointBatch:
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
        starts = np.zeros(len(texts), dtype=np.int64)
        if len(texts) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        return cls(codes=codes, starts=starts, lengths=lengths)

    @property
    def n_docs(self) -> int:
        return len(self.lengths)

    def doc_index(self) -> np.ndarray:
        """[total_chars] int64: the document each code point belongs to."""
        return np.repeat(np.arange(self.n_docs, dtype=np.int64), self.lengths)

    def window_hashes(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """64-bit hashes of every character n-gram that lies inside one document.

        Returns `(hashes [n_windows] uint64, doc [n_windows] int64)`, windows in document
        order. A polynomial hash over code points: equal n-grams give equal hashes.
        """
        total = len(self.codes)
        if total < n or n <= 0:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        codes = self.codes.astype(np.uint64)
        n_pos = total - n + 1
        h = np.zeros(n_pos, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n):
                h *= _MIX
                h += codes[j : j + n_pos] + np.uint64(1)
            h ^= h >> np.uint64(29)
            h *= _MIX
        doc = self.doc_index()
        # a window is valid when its first and last characters belong to the same document
        valid = doc[:n_pos] == doc[n - 1 :]
        return h[valid], doc[:n_pos][valid]

    def per_doc_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum a per-code-point array within each document: [n_docs] float64."""
        return np.bincount(self.doc_index(), weights=values, minlength=self.n_docs)
