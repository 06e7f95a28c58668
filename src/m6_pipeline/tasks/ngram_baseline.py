"""The prompted tasks' baseline (forum QA §4.4, poems §4.5): a token n-gram language model
trained on the pretraining text, with no network and no multimodal pretraining.

The paper's baseline for prompted generation is implicit; an untrained network is no baseline
at all (its NLL is about ln V whatever the data). This one has seen the same text as M6, through
the same tokenizer, so "M6 beats it" says that pretraining learnt more than local token
statistics. Smoothing is interpolated Kneser-Ney (Chen and Goodman 1998) with one discount per
order: the highest order uses counts, the lower ones continuation counts (how many distinct
tokens precede an n-gram), and the unigram is mixed with the uniform distribution so that
every token of the vocabulary has a probability.

It is prompted as a text LM is: the prompt's token ids are the context, the answer continues
it, and [EOS] ends it. A distribution over the whole vocabulary comes out of `log_probs`, so
sampling, top-k/top-p and the poem format constraint run on it exactly as on M6's logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import torch

from m6_pipeline.model.generation import Sampling, next_token
from m6_pipeline.storage import location
from m6_pipeline.tasks.poem.format import PoemConstraint

DISCOUNT = 0.75


@dataclass(frozen=True)
class NgramTable:
    """The k-grams of one order: sorted keys (token ids in base V), their (continuation) counts."""

    keys: np.ndarray  # int64 [G]
    counts: np.ndarray  # float64 [G]


@dataclass(frozen=True)
class NgramLM:
    order: int
    vocab_size: int
    bos: int
    eos: int
    tables: tuple[NgramTable, ...]  # tables[k - 1]: the k-grams, k = 1..order
    n_train_tokens: int
    discount: float = DISCOUNT

    @classmethod
    def train(cls, documents: Iterable[list[int]], vocab_size: int, bos: int, eos: int, order: int = 3,
              discount: float = DISCOUNT) -> NgramLM:
        """Each document is padded with order-1 [BOS] before and one [EOS] after."""
        if order < 1 or vocab_size ** order >= 2**62:
            raise ValueError(f"order {order} with a vocabulary of {vocab_size} does not fit int64 keys")
        pieces, n_tokens = [], 0
        for ids in documents:
            if len(ids):
                pieces.append(np.asarray([bos] * (order - 1) + list(ids) + [eos], dtype=np.int64))
                n_tokens += len(ids) + 1
        if not pieces:
            raise ValueError("the n-gram baseline needs training text: the documents are empty")
        ids = np.concatenate(pieces)
        doc = np.repeat(np.arange(len(pieces)), [len(p) for p in pieces])  # a window must not cross documents
        highest = cls._grams(ids, doc, order, vocab_size)
        keys, counts = np.unique(highest, return_counts=True)
        tables = [NgramTable(keys, counts.astype(np.float64))]
        for k in range(order - 1, 0, -1):  # continuation counts: distinct left neighbours
            suffix = tables[0].keys % vocab_size**k
            keys, counts = np.unique(suffix, return_counts=True)
            tables.insert(0, NgramTable(keys, counts.astype(np.float64)))
        return cls(order, vocab_size, bos, eos, tuple(tables), n_tokens, discount)

    @staticmethod
    def _grams(ids: np.ndarray, doc: np.ndarray, k: int, v: int) -> np.ndarray:
        """Keys of every k-gram inside one (padded) document: each ends on a real token or [EOS]."""
        n = len(ids) - k + 1
        keys = np.zeros(n, dtype=np.int64)
        for j in range(k):
            keys = keys * v + ids[j : j + n]
        same_doc = doc[:n] == doc[k - 1 : k - 1 + n]
        return keys[same_doc]

    def log_probs(self, context: list[int]) -> np.ndarray:
        """log P(next | the last order-1 ids of `context`) over the whole vocabulary [V]."""
        v, d = self.vocab_size, self.discount
        history = ([self.bos] * (self.order - 1) + list(context))[len(context):] if self.order > 1 else []
        unigram = self.tables[0]
        total = unigram.counts.sum()
        p = np.full(v, d * len(unigram.keys) / total / v)
        p[unigram.keys] += np.maximum(unigram.counts - d, 0) / total
        for k in range(2, self.order + 1):
            h = 0
            for token in history[len(history) - (k - 1):]:
                h = h * v + token
            table = self.tables[k - 1]
            lo, hi = np.searchsorted(table.keys, [h * v, (h + 1) * v])
            if hi == lo:  # an unseen context: the lower order stands
                continue
            counts = table.counts[lo:hi]
            total = counts.sum()
            p = p * (d * (hi - lo) / total)
            p[table.keys[lo:hi] % v] += np.maximum(counts - d, 0) / total
        return np.log(p)

    def nll(self, contexts: list[list[int]], targets: list[list[int]]) -> float:
        """Mean negative log-likelihood (nats per token) of each target and its [EOS] after its context."""
        total, n = 0.0, 0
        for context, target in zip(contexts, targets, strict=True):
            seen = list(context)
            for token in [*target, self.eos]:
                total -= float(self.log_probs(seen)[token])
                seen.append(token)
                n += 1
        return total / max(n, 1)


def train_on_shards(shard_summary: dict, vocab_size: int, bos: int, eos: int, order: int = 3) -> NgramLM:
    """The baseline trained on the text shards' train split that the pretraining stage wrote
    (`<shard_dir>/text/train-*.parquet`, token_ids): the text M6 pretrained on, token for token."""
    files = (location(shard_summary["shard_dir"]) / "text").glob("train-*.parquet")
    if not files:
        raise FileNotFoundError(
            f"no text shards under {shard_summary['shard_dir']}/text: run the pretraining stage's "
            "write_token_shards first (kedro run --pipeline=pretrain_base)")

    def documents():
        for file in files:
            with file.open_input_file() as handle:
                for batch in pq.ParquetFile(handle).iter_batches(columns=["token_ids"], batch_size=8192):
                    yield from batch.column("token_ids").to_pylist()

    return NgramLM.train(documents(), vocab_size, bos, eos, order)


def sample(
    lm: NgramLM, contexts: list[list[int]], max_new_tokens: int, sampling: Sampling, seed: int,
    constraint: PoemConstraint | None = None,
) -> list[list[int]]:
    """One continuation per context, sampled as M6's are (`next_token`: greedy, top-k or top-p
    with temperature), until [EOS] or `max_new_tokens`; with a `constraint`, format-breaking
    tokens are masked at every step, as `generate_poems` does for M6, and it decides the end."""
    generator = torch.Generator().manual_seed(seed)
    seen = [list(c) for c in contexts]
    outputs: list[list[int]] = [[] for _ in contexts]
    states = [constraint.start() for _ in contexts] if constraint is not None else None
    done = [False] * len(contexts)
    for _ in range(max_new_tokens):
        logits = torch.from_numpy(np.stack([lm.log_probs(s) for s in seen])).float()
        if constraint is not None:
            logits = logits.masked_fill(~constraint.mask(states), float("-inf"))
        for row, token in enumerate(next_token(logits, sampling, generator).tolist()):
            if done[row]:
                continue
            if constraint is not None:
                states[row] = constraint.advance(states[row], token)
                done[row] = states[row].finished
            else:
                done[row] = token == lm.eos
            if token != lm.eos and not (constraint is not None and token == constraint.eos):
                outputs[row].append(token)
            seen[row].append(token)
        if all(done):
            break
    if constraint is not None and not all(done):
        raise RuntimeError(f"poem constraint did not end within {max_new_tokens} tokens: a bug in PoemConstraint")
    return outputs
