"""The four pretraining tasks of §3.3 as sequences for the unified encoder-decoder.

Every example is laid out as [image patches | masked text [SEP] | [BOS] target [EOS]]:
- text_denoising: 15% of the text as one contiguous span replaced by a single [MASK]; the
  model decodes the whole text (recovering the span and predicting its length);
- language_modelling: empty prefix, the text is decoded from [BOS];
- image_to_text: the patch features are the prefix, the masked text is left blank;
- multimodality_to_text: patch features and the masked text, decode the whole text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from m6_pipeline.model.m6 import IGNORE_INDEX
from m6_pipeline.model.masking import IMAGE, MASKED_TEXT, TARGET_TEXT

Task = Literal["text_denoising", "language_modelling", "image_to_text", "multimodality_to_text"]
TASKS: tuple[Task, ...] = (
    "text_denoising",
    "language_modelling",
    "image_to_text",
    "multimodality_to_text",
)
IMAGE_TASKS = frozenset({"image_to_text", "multimodality_to_text"})
MASKED_TEXT_TASKS = frozenset({"text_denoising", "multimodality_to_text"})


@dataclass(frozen=True)
class SpecialTokens:
    pad: int
    sep: int
    mask: int
    bos: int
    eos: int

    @classmethod
    def of(cls, tokenizer) -> SpecialTokens:
        """The ids a trained WordPiece tokenizer gives these tokens (raises if any is missing)."""
        from m6_pipeline.tokenization.wordpiece import special_ids

        ids = special_ids(tokenizer)
        return cls(pad=ids.pad, sep=ids.sep, mask=ids.mask, bos=ids.bos, eos=ids.eos)


@dataclass(frozen=True)
class Example:
    prefix_text: list[int]  # masked text and [SEP]; empty when the task has no text prefix
    target: list[int]  # [BOS] text [EOS]
    patch_features: np.ndarray | None  # [n_patches, d_patch_feature]


def mask_one_span(
    ids: list[int], proportion: float, mask_id: int, rng: np.random.Generator
) -> list[int]:
    """Replace one contiguous span of round(proportion * len) tokens (at least one) by a
    single mask token (§3.3: "a continuous span of text with a single mask")."""
    if not ids:
        return [mask_id]
    span = max(1, round(proportion * len(ids)))
    start = int(rng.integers(0, len(ids) - span + 1))
    return ids[:start] + [mask_id] + ids[start + span :]


def build_example(
    task: Task,
    text_ids: list[int],
    special: SpecialTokens,
    rng: np.random.Generator,
    *,
    patch_features: np.ndarray | None = None,
    mask_proportion: float = 0.15,
    max_text_tokens: int = 128,
) -> Example:
    """One example of `task` from a text's token ids (no special tokens) and its image."""
    if task not in TASKS:
        raise ValueError(f"unknown pretraining task {task!r}; tasks are {TASKS}")
    if task in IMAGE_TASKS and patch_features is None:
        raise ValueError(f"task {task} needs patch features; feed it image-text pairs")
    text = text_ids[:max_text_tokens]
    prefix: list[int] = []
    if task in MASKED_TEXT_TASKS:
        prefix = mask_one_span(text, mask_proportion, special.mask, rng) + [special.sep]
    return Example(
        prefix_text=prefix,
        target=[special.bos, *text, special.eos],
        patch_features=patch_features if task in IMAGE_TASKS else None,
    )


def prefix_batch(prompts: list[list[int]], special: SpecialTokens) -> tuple[torch.Tensor, ...]:
    """Right-padded [prompt [SEP]] text prefixes as `collate` lays them out, for decoding:
    input_ids, segment_ids [batch, width] and prefix_lengths [batch]."""
    rows = [[*p, special.sep] for p in prompts]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), special.pad, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    segment_ids = torch.full_like(input_ids, MASKED_TEXT)
    return input_ids, segment_ids, torch.tensor([len(r) for r in rows], dtype=torch.long)


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors for `M6Model.forward`: input_ids, segment_ids, prefix_lengths,
    lengths, labels (next token of each target position, else IGNORE_INDEX) and, when the
    examples carry images, patch_features [batch, n_patches, d_patch_feature]."""
    with_image = [e.patch_features is not None for e in examples]
    if any(with_image) and not all(with_image):
        raise ValueError("a batch mixes examples with and without images; batch one task at a time")
    n_patches = examples[0].patch_features.shape[0] if with_image[0] else 0
    lengths = [n_patches + len(e.prefix_text) + len(e.target) for e in examples]
    seq_len = max(lengths)
    batch = len(examples)
    input_ids = torch.full((batch, seq_len), pad_id, dtype=torch.long)
    segment_ids = torch.full((batch, seq_len), TARGET_TEXT, dtype=torch.long)
    labels = torch.full((batch, seq_len), IGNORE_INDEX, dtype=torch.long)
    prefix_lengths = torch.empty(batch, dtype=torch.long)
    for row, example in enumerate(examples):
        prefix_end = n_patches + len(example.prefix_text)
        end = prefix_end + len(example.target)
        segment_ids[row, :n_patches] = IMAGE
        segment_ids[row, n_patches:prefix_end] = MASKED_TEXT
        input_ids[row, n_patches:prefix_end] = torch.tensor(example.prefix_text, dtype=torch.long)
        target = torch.tensor(example.target, dtype=torch.long)
        input_ids[row, prefix_end:end] = target
        labels[row, prefix_end : end - 1] = target[1:]
        prefix_lengths[row] = prefix_end
    out = {
        "input_ids": input_ids,
        "segment_ids": segment_ids,
        "prefix_lengths": prefix_lengths,
        "lengths": torch.tensor(lengths, dtype=torch.long),
        "labels": labels,
    }
    if n_patches:
        features = np.stack([e.patch_features for e in examples]).astype(np.float32)
        out["patch_features"] = torch.from_numpy(features)
    return out
