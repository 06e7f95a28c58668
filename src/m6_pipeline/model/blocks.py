"""Transformer blocks as BERT/GPT build them (§3.2): self-attention and a point-wise FFN.

Pre-LayerNorm (GPT-2's placement) keeps deep stacks stable without warm-up tricks. Attention is
PyTorch's fused `scaled_dot_product_attention` with the prefix-LM mask, never a hand softmax.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from m6_pipeline.model.config import M6Config

KVCache = tuple[torch.Tensor, torch.Tensor]  # keys, values: [batch, heads, cached, head_dim]


def attention_backend(q: torch.Tensor) -> contextlib.AbstractContextManager:
    """SDPA's kernel for these queries. On CPU in bf16/fp16, PyTorch's flash kernel is the slow
    one: forward + backward take 1.5x the math kernel's at M6's shapes (benchmarks/attention_kernels.py),
    at the same error against fp32; elsewhere (fp32, CUDA) PyTorch's own choice stands."""
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


class SelfAttention(nn.Module):
    def __init__(self, config: M6Config) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """x: [batch, seq, d_model]; mask: bool [batch, 1, seq, keys]. Returns the output and
        the keys/values including the cache (keys = cached + seq).

        Shapes come from `qkv`'s output and `n_heads`, never from x's width: under tensor
        parallelism (training/tensor_parallel.py) `qkv` yields this rank's heads only, and
        `n_heads` is the local head count."""
        batch, seq, _ = x.shape
        q, k, v = self.qkv(x).view(batch, seq, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        with attention_backend(q):
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
            )
        y = y.transpose(1, 2).reshape(batch, seq, -1)
        return self.proj(y), (k, v)


class FeedForward(nn.Module):
    def __init__(self, config: M6Config) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.ffn_width)
        self.proj = nn.Linear(config.ffn_width, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.approximate = config.gelu_approximate

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """token_mask is for the MoE FFN's routing; a dense FFN treats every position alike."""
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """x + attention(LN(x)), then x + FFN(LN(x)). The FFN is swappable: dense or MoE."""

    def __init__(self, config: M6Config, ffn: nn.Module | None = None) -> None:
        super().__init__()
        self.ln_attention = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.attention = SelfAttention(config)
        self.ln_ffn = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.ffn = ffn if ffn is not None else FeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None = None,
        token_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """token_mask: bool [batch, seq], False at padding (which an MoE FFN does not route)."""
        attended, new_cache = self.attention(self.ln_attention(x), mask, cache)
        x = x + self.dropout(attended)
        x = x + self.ffn(self.ln_ffn(x), token_mask)
        return x, new_cache
