"""Answers from a finetuned model: greedy (or sampled) generation with the KV cache, and the
log-likelihood of given targets (image-text matching's query scores)."""

from __future__ import annotations

import numpy as np
import torch
from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling, generate
from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.examples import Encoded, batch_of
from m6_pipeline.tokenization.wordpiece import detokenize

DECODE_BATCH = 64  # rows decoded at once


def _prefix(chunk: list[Encoded], special: SpecialTokens, features: dict[str, np.ndarray]):
    batch = batch_of(chunk, special, features, with_target=False)
    prefix_len = int(batch["prefix_lengths"].max())
    return (batch["input_ids"][:, :prefix_len], batch["segment_ids"][:, :prefix_len],
            batch["prefix_lengths"], batch.get("patch_features"))


@torch.no_grad()
def generate_texts(
    model: M6Model, tokenizer: Tokenizer, encoded: list[Encoded], special: SpecialTokens,
    features: dict[str, np.ndarray], max_new_tokens: int, batch_size: int = DECODE_BATCH,
    sampling: Sampling = Sampling(), seed: int = 0,
) -> list[str]:
    """The model's text after each example's prefix (greedy by default), detokenized."""
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out: list[str] = []
    for start in range(0, len(encoded), batch_size):
        ids, segments, lengths, patches = _prefix(encoded[start : start + batch_size], special, features)
        generated = generate(
            model, ids, segments, lengths, bos_id=special.bos, eos_id=special.eos,
            max_new_tokens=max_new_tokens, patch_features=patches, sampling=sampling, generator=generator,
        )
        out += [detokenize(tokenizer, g) for g in generated]
    return out


@torch.no_grad()
def target_log_likelihoods(
    model: M6Model, encoded: list[Encoded], special: SpecialTokens, features: dict[str, np.ndarray],
    batch_size: int = 64,
) -> np.ndarray:
    """[n_examples] summed log-probability (nats) of each example's target tokens and [EOS]
    after its prefix (examples with images and without are batched apart)."""
    model.eval()
    out = np.zeros(len(encoded))
    groups = [[i for i, e in enumerate(encoded) if (e.example.image_id is None) == text_only] for text_only in (False, True)]
    for indices in groups:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            batch = batch_of([encoded[i] for i in chunk], special, features)
            labels = batch.pop("labels")
            hidden = model(**batch)
            logits = (hidden @ model.output_weight.to(hidden.dtype).T).float()
            keep = labels != IGNORE_INDEX
            token_lp = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
            out[chunk] = (token_lp * keep).sum(dim=1).numpy()
    return out
