"""Decoding with a KV cache: greedy, top-k and top-p (nucleus) sampling.

The prefix (image patches and masked text, right-padded) is encoded once; each new target token
then costs one position through the stack, attending to the cached keys and values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.masking import TARGET_TEXT, cached_step_mask, prefix_lm_mask


@dataclass(frozen=True)
class Sampling:
    strategy: str = "greedy"  # greedy | top_k | top_p
    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in ("greedy", "top_k", "top_p"):
            raise ValueError(f"unknown sampling strategy {self.strategy!r}: greedy, top_k, top_p")


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """logits [batch, vocab] with everything outside the top_k (0: no cut) and outside the
    smallest set of probability >= top_p (1.0: no cut) set to -inf."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the mass before it already reaches top_p (the first always stays)
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> torch.Tensor:
    """logits: [batch, vocab] -> token ids [batch]."""
    if sampling.strategy == "greedy":
        return logits.argmax(dim=-1)
    logits = logits.float() / max(sampling.temperature, 1e-6)
    logits = filter_logits(
        logits,
        top_k=sampling.top_k if sampling.strategy == "top_k" else 0,
        top_p=sampling.top_p if sampling.strategy == "top_p" else 1.0,
    )
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _collect(token: torch.Tensor, eos_id: int, finished: torch.Tensor, outputs: list[list[int]]) -> None:
    """Append each unfinished row's new token; [EOS] finishes the row and is not kept."""
    for row, value in enumerate(token.tolist()):
        if not finished[row]:
            if value == eos_id:
                finished[row] = True
            else:
                outputs[row].append(value)


@torch.no_grad()
def generate(
    model: M6Model,
    input_ids: torch.Tensor,
    segment_ids: torch.Tensor,
    prefix_lengths: torch.Tensor,
    *,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    patch_features: torch.Tensor | None = None,
    sampling: Sampling = Sampling(),
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Generate target text after each prefix. input_ids, segment_ids: [batch, prefix_len]
    right-padded prefixes (image positions first); prefix_lengths: [batch] real lengths.
    Returns the generated ids per example, without [BOS], up to and excluding [EOS].
    `use_cache=False` recomputes the whole sequence every step (the benchmark's peer)."""
    model.eval()
    batch, prefix_len = input_ids.shape
    device = input_ids.device
    bos = torch.full((batch, 1), bos_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    if max_new_tokens + prefix_len + 1 > model.config.max_positions:
        raise ValueError("prefix plus max_new_tokens exceeds the model's max_positions")

    if not use_cache:
        return _generate_by_recomputation(
            model, input_ids, segment_ids, prefix_lengths, bos, patch_features,
            eos_id, max_new_tokens, sampling, generator,
        )

    step_logits, state = encode_prefix(
        model, input_ids, segment_ids, prefix_lengths, bos_id, patch_features
    )
    for step in range(max_new_tokens):
        token = next_token(step_logits, sampling, generator)
        _collect(token, eos_id, finished, outputs)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        step_logits = decode_step(model, token, state)
    return outputs


@dataclass
class DecodingState:
    """What a cached decoder carries between steps."""

    target_start: torch.Tensor  # [batch] position of [BOS]
    key_valid: torch.Tensor  # [batch, cache_len] bool: real (not padding) cached keys
    caches: list
    head: str
    n_generated: int = 0


def encode_prefix(
    model: M6Model,
    input_ids: torch.Tensor,
    segment_ids: torch.Tensor,
    prefix_lengths: torch.Tensor,
    bos_id: int,
    patch_features: torch.Tensor | None = None,
    head: str = "word",
    target_start: int | None = None,
) -> tuple[torch.Tensor, DecodingState]:
    """Encode [prefix | BOS] once (BOS sits at position prefix_lengths[b] of every example, or
    at `target_start` for all): the logits [batch, vocab] of the first target token and the
    state for `decode_step`."""
    batch, prefix_len = input_ids.shape
    device = input_ids.device
    bos = torch.full((batch, 1), bos_id, dtype=torch.long, device=device)
    target_segment = torch.full((batch, 1), TARGET_TEXT, dtype=torch.long, device=device)
    ids = torch.cat([input_ids, bos], dim=1)
    segments = torch.cat([segment_ids, target_segment], dim=1)
    positions = torch.arange(prefix_len + 1, device=device).expand(batch, -1).clone()
    start = prefix_lengths if target_start is None else torch.full_like(prefix_lengths, target_start)
    positions[:, -1] = start
    key_valid = torch.arange(prefix_len + 1, device=device)[None] < prefix_lengths[:, None]
    key_valid[:, -1] = True
    mask = prefix_lm_mask(prefix_lengths, torch.full_like(prefix_lengths, prefix_len + 1), prefix_len + 1)
    mask = mask & key_valid[:, None, None, :] | torch.eye(prefix_len + 1, dtype=torch.bool, device=device)
    logits, caches = model.step(ids, segments, positions, mask, None, patch_features, head=head)
    return logits[:, -1], DecodingState(start, key_valid, caches, head)


def decode_step(model: M6Model, token: torch.Tensor, state: DecodingState) -> torch.Tensor:
    """Feed the tokens [batch] just chosen; returns the next logits [batch, vocab] and extends
    `state` (one position through the stack, attending to the cache)."""
    batch = token.shape[0]
    state.key_valid = torch.cat(
        [state.key_valid, torch.ones(batch, 1, dtype=torch.bool, device=token.device)], dim=1
    )
    position = (state.target_start + 1 + state.n_generated)[:, None]
    segment = torch.full((batch, 1), TARGET_TEXT, dtype=torch.long, device=token.device)
    logits, state.caches = model.step(
        token[:, None], segment, position, cached_step_mask(state.key_valid), state.caches,
        head=state.head,
    )
    state.n_generated += 1
    return logits[:, -1]


def full_sequence_logits(
    model: M6Model,
    input_ids: torch.Tensor,
    segment_ids: torch.Tensor,
    prefix_lengths: torch.Tensor,
    generated: torch.Tensor,
    patch_features: torch.Tensor | None = None,
    head: str = "word",
    target_start: int | None = None,
) -> torch.Tensor:
    """Without a cache: re-encode [prefix | generated] (generated starts with [BOS], at
    position prefix_lengths[b] or `target_start`) and return the logits [batch, vocab] after
    its last token."""
    batch, prefix_len = input_ids.shape
    seq = torch.cat([input_ids, generated], dim=1)
    total = seq.shape[1]
    segments = torch.cat([segment_ids, torch.full_like(generated, TARGET_TEXT)], dim=1)
    positions = torch.arange(total).expand(batch, -1).clone()
    start = prefix_lengths if target_start is None else torch.full_like(prefix_lengths, target_start)
    positions[:, prefix_len:] = start[:, None] + torch.arange(generated.shape[1])
    key_valid = torch.arange(total)[None] < prefix_lengths[:, None]
    key_valid[:, prefix_len:] = True
    mask = prefix_lm_mask(prefix_lengths, torch.full_like(prefix_lengths, total), total)
    mask = mask & key_valid[:, None, None, :] | torch.eye(total, dtype=torch.bool)
    logits, _ = model.step(seq, segments, positions, mask, None, patch_features, head=head)
    return logits[:, -1]


def _generate_by_recomputation(
    model, input_ids, segment_ids, prefix_lengths, bos, patch_features,
    eos_id, max_new_tokens, sampling, generator,
) -> list[list[int]]:
    """The same decoding without a cache: the full sequence is re-encoded every step."""
    batch = input_ids.shape[0]
    generated = bos
    finished = torch.zeros(batch, dtype=torch.bool)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(max_new_tokens):
        logits = full_sequence_logits(model, input_ids, segment_ids, prefix_lengths, generated, patch_features)
        token = next_token(logits, sampling, generator)
        _collect(token, eos_id, finished, outputs)
        if bool(finished.all()):
            break
        generated = torch.cat([generated, token[:, None]], dim=1)
    return outputs
