"""The masks of §3.2: one transformer that is encoder and decoder at once.

A sequence is [image patches | masked text | target text | padding]. The first two parts (the
prefix) attend to each other bidirectionally; the target text is causal and sees the whole
prefix. Segment ids name the parts for the segment embeddings.
"""

from __future__ import annotations

import torch

IMAGE, MASKED_TEXT, TARGET_TEXT = 0, 1, 2


def prefix_lm_mask(prefix_lengths: torch.Tensor, lengths: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Boolean attention mask, True where a query may attend a key.

    prefix_lengths, lengths: [batch] (positions < prefix_length form the bidirectional prefix;
    positions >= length are padding). Returns [batch, 1, seq_len, seq_len] for
    `scaled_dot_product_attention`. Padding queries attend only to themselves so that no row
    is empty (an empty row gives NaN); their outputs carry no loss.
    """
    pos = torch.arange(seq_len, device=lengths.device)
    query, key = pos[:, None], pos[None, :]
    in_prefix = key[None] < prefix_lengths[:, None, None]
    causal = (key <= query)[None]
    real_key = key[None] < lengths[:, None, None]
    mask = real_key & (in_prefix | causal)
    mask = mask | (query == key)[None]
    return mask[:, None]


def cached_step_mask(key_valid: torch.Tensor) -> torch.Tensor:
    """Mask for one decoding step over a KV cache: the new token sees every real cached key.

    key_valid: [batch, cache_len] bool. Returns [batch, 1, 1, cache_len].
    """
    return key_valid[:, None, None, :]


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The boolean mask as 0 / -inf in the attention's compute dtype, made once per forward
    (a boolean mask is converted inside every attention call, forward and backward)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))
