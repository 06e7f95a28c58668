"""A downstream example as the unified model sees it: [image patches | prompt [SEP]] as the
bidirectional prefix, [BOS] target [EOS] as the causal part (the layout of pretraining's
image-to-text and multimodality-to-text tasks, so finetuning starts from what was learnt)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tokenizers import Tokenizer

from m6_pipeline.pretraining.tasks import Example, SpecialTokens, collate


@dataclass(frozen=True)
class TaskExample:
    id: str
    prompt: str  # text of the prefix ("" for captioning: the image alone)
    target: str  # the text to produce (an answer, a caption, 是/否)
    image_id: str | None = None  # key into the patch features; None for text-only tasks
    meta: dict = field(default_factory=dict)  # question type, label, source: kept in reports


@dataclass(frozen=True)
class Encoded:
    """A TaskExample tokenized: what batches are made of."""

    example: TaskExample
    prompt_ids: list[int]
    target_ids: list[int]


def encode_examples(
    examples: list[TaskExample], tokenizer: Tokenizer, max_prompt_tokens: int, max_target_tokens: int
) -> list[Encoded]:
    """Tokenize prompts and targets (truncated to the limits; an empty target is an error)."""
    prompts = tokenizer.encode_batch([e.prompt for e in examples], add_special_tokens=False)
    targets = tokenizer.encode_batch([e.target for e in examples], add_special_tokens=False)
    out = []
    for example, prompt, target in zip(examples, prompts, targets):
        if not target.ids:
            raise ValueError(f"example {example.id} has an empty target {example.target!r}")
        out.append(Encoded(example, prompt.ids[:max_prompt_tokens], target.ids[:max_target_tokens]))
    return out


def model_example(
    encoded: Encoded, special: SpecialTokens, features: dict[str, np.ndarray], with_target: bool = True
) -> Example:
    """The pretraining `Example` of an encoded task example; with_target=False leaves [BOS]
    alone in the target (for decoding)."""
    image_id = encoded.example.image_id
    patches = None
    if image_id is not None:
        if image_id not in features:
            raise KeyError(f"no patch features for image {image_id!r} (example {encoded.example.id})")
        patches = features[image_id]
    prefix = [*encoded.prompt_ids, special.sep] if encoded.prompt_ids else []
    target = [special.bos, *encoded.target_ids, special.eos] if with_target else [special.bos]
    return Example(prefix_text=prefix, target=target, patch_features=patches)


def batch_of(
    encoded: list[Encoded], special: SpecialTokens, features: dict[str, np.ndarray], with_target: bool = True
) -> dict[str, torch.Tensor]:
    """Collated tensors for `M6Model.forward` (all examples with images, or all without)."""
    return collate([model_example(e, special, features, with_target) for e in encoded], special.pad)
