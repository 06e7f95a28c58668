"""The M6 model (§3.1-3.2): image patch features and word embeddings in one sequence, segment
and position embeddings on top, a stack of transformer blocks, an output layer tied to the
word embeddings."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from m6_pipeline.model.blocks import Block, KVCache
from m6_pipeline.model.config import M6Config
from m6_pipeline.model.linear_cross_entropy import linear_cross_entropy
from m6_pipeline.model.masking import additive_mask, prefix_lm_mask
from m6_pipeline.model.moe import ExpertParallel, MoELayer, MoEStatistics

IGNORE_INDEX = -100


class M6Embeddings(nn.Module):
    """word | image code | projected patch feature, plus position and segment embeddings."""

    def __init__(self, config: M6Config) -> None:
        super().__init__()
        self.vocab_size = config.vocab_size
        self.word = nn.Embedding(config.vocab_size, config.d_model)
        # text-to-image (§4.1): "code embedding" rows for ids vocab_size ... vocab_size + n - 1
        self.code = nn.Embedding(config.n_image_codes, config.d_model) if config.n_image_codes else None
        self.position = nn.Embedding(config.max_positions, config.d_model)
        self.segment = nn.Embedding(config.n_segments, config.d_model)
        self.patch_projection = nn.Linear(config.d_patch_feature, config.d_model)
        self.idle_patch_projection_gets_gradient = False
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        position_ids: torch.Tensor,
        patch_features: torch.Tensor | None,
    ) -> torch.Tensor:
        """input_ids, segment_ids, position_ids: [batch, seq]; patch_features:
        [batch, n_patches, d_patch_feature] occupying the first n_patches positions."""
        x = self._tokens(input_ids)
        if patch_features is not None:
            n_patches = patch_features.shape[1]
            patches = self.patch_projection(patch_features.to(x.dtype))
            x = torch.cat([patches, x[:, n_patches:]], dim=1)
        elif self.training and self.idle_patch_projection_gets_gradient:
            # a text-only batch gives the patch projection a zero gradient (Gemini refuses a
            # backward that leaves a parameter it fetched without one); off elsewhere, where a
            # zero gradient would let AdamW's momentum move the idle projection
            x = x + 0.0 * (self.patch_projection.weight.sum() + self.patch_projection.bias.sum())
        x = x + self.position(position_ids) + self.segment(segment_ids)
        return self.dropout(x)

    def _tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.code is None:
            return self.word(input_ids)
        is_code = input_ids >= self.vocab_size
        words = self.word(input_ids.masked_fill(is_code, 0))
        codes = self.code((input_ids - self.vocab_size).clamp(min=0))
        return torch.where(is_code.unsqueeze(-1), codes, words)


def derive_seed(seed: int, *keys: int) -> int:
    """A seed of its own for one tensor or layer: (seed, keys) mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint32)[0])


class M6Model(nn.Module):
    def __init__(
        self, config: M6Config, expert_parallel: ExpertParallel | None = None, seed: int | None = None
    ) -> None:
        """expert_parallel: the group the MoE experts are sharded over (None: all experts here).
        seed: of the initial weights (None: drawn from torch's global generator). Every weight
        draws from a generator of its own, so the weights do not depend on the order in which
        tensors are created or materialised: lazy initialisation (training/lazy_init.py) gives
        the eager weights. Under lazy initialisation pass the seed: a draw there reads 0."""
        super().__init__()
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (), device="cpu"))
        self.config = config
        self.embeddings = M6Embeddings(config)
        self.blocks = nn.ModuleList(
            Block(config, self._moe_ffn(config, i, expert_parallel, seed)) for i in range(config.n_layers)
        )
        self.last_losses: dict[str, float] = {}
        self.ln_final = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        # text-to-image: the "code output layer" (§4.1), separate from the tied word output
        self.code_head = (
            nn.Linear(config.d_model, config.n_image_codes, bias=False) if config.n_image_codes else None
        )
        self._init_weights(seed)

    @staticmethod
    def _moe_ffn(
        config: M6Config, index: int, expert_parallel: ExpertParallel | None, seed: int
    ) -> MoELayer | None:
        if config.moe is None or not config.moe.is_moe_block(index):
            return None
        return MoELayer(
            config.d_model, config.expert_width, config.moe, init_std=config.init_std,
            output_std=config.init_std / math.sqrt(2 * config.n_layers), dropout=config.dropout,
            expert_parallel=expert_parallel, approximate=config.gelu_approximate,
            seed=derive_seed(seed, 1, index),
        )

    @property
    def moe_layers(self) -> list[MoELayer]:
        return [block.ffn for block in self.blocks if isinstance(block.ffn, MoELayer)]

    def expert_parameters(self) -> list[nn.Parameter]:
        """Sharded over the expert-parallel group: excluded from data-parallel all-reduce and
        clipped by their local norm (§3.4)."""
        return [p for layer in self.moe_layers for p in layer.expert_parameters()]

    def moe_statistics(self) -> list[MoEStatistics]:
        """Per MoE layer, what its last forward routed and dropped."""
        return [layer.statistics for layer in self.moe_layers if layer.statistics is not None]

    @torch.no_grad()
    def _init_weights(self, seed: int) -> None:
        """Linear and embedding weights N(0, init_std), biases 0; GPT-2's residual projections
        N(0, init_std / sqrt(2 n_layers)), so the residual stream does not grow with depth.
        Module i of `named_modules()` draws from a generator seeded `derive_seed(seed, 0, i)`."""
        residual_std = self.config.init_std / math.sqrt(2 * self.config.n_layers)
        for index, (name, module) in enumerate(self.named_modules()):
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual_std if name.endswith(("attention.proj", "ffn.proj")) else self.config.init_std
                generator = torch.Generator().manual_seed(derive_seed(seed, 0, index))
                nn.init.normal_(module.weight, std=std, generator=generator)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def output_weight(self) -> torch.Tensor:
        """The output layer is the word embedding matrix (tied, §3.2)."""
        return self.embeddings.word.weight

    def forward(
        self,
        input_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        prefix_lengths: torch.Tensor,
        lengths: torch.Tensor,
        patch_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states [batch, seq, d_model] of a right-padded batch (see `prefix_lm_mask`),
        or, given labels [batch, seq], the mean next-token loss (nats) over labelled positions,
        plus in training the MoE router losses (`last_losses` keeps the parts).
        Computing the loss inside forward lets DDP see every parameter the loss touches.
        position_ids [batch, seq] default to 0..seq-1 (text-to-image pins the image codes to
        the same positions whatever the prompt's length)."""
        seq_len = input_ids.shape[1]
        if seq_len > self.config.max_positions:
            raise ValueError(
                f"sequence of {seq_len} positions exceeds max_positions="
                f"{self.config.max_positions}; lower the data's max lengths or raise max_positions"
            )
        positions = torch.arange(seq_len, device=input_ids.device).expand_as(input_ids)
        x = self.embeddings(
            input_ids, segment_ids, positions if position_ids is None else position_ids, patch_features
        )
        mask = additive_mask(prefix_lm_mask(prefix_lengths, lengths, seq_len), self._compute_dtype(x))
        tokens = positions < lengths.unsqueeze(1) if self.config.moe is not None else None
        for block in self.blocks:
            if self.config.activation_checkpointing and self.training:
                x = checkpoint(lambda h, b=block: b(h, mask, None, tokens)[0], x, use_reentrant=False)
            else:
                x, _ = block(x, mask, None, tokens)
        hidden = self.ln_final(x)
        if labels is None:
            return hidden
        loss = self.loss(hidden, labels)
        self.last_losses = {"lm": float(loss.detach())}
        if self.config.moe is not None and self.training:
            loss = loss + self._router_loss()
        return loss

    def _router_loss(self) -> torch.Tensor:
        """Switch load-balancing loss (and the optional z-loss), averaged over MoE layers."""
        moe = self.config.moe
        aux = torch.stack([layer.router_losses[0] for layer in self.moe_layers]).mean()
        z = torch.stack([layer.router_losses[1] for layer in self.moe_layers]).mean()
        self.last_losses.update(aux=float(aux.detach()), z=float(z.detach()))
        return moe.aux_loss_weight * aux + moe.z_loss_weight * z

    @staticmethod
    def _compute_dtype(x: torch.Tensor) -> torch.dtype:
        if torch.is_autocast_enabled(x.device.type):
            return torch.get_autocast_dtype(x.device.type)
        return x.dtype

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross entropy (nats) over the positions whose label is not ignored.

        Logits are computed only at those positions: the vocabulary projection is the largest
        matrix product of a small model, and most positions (image, prefix, padding) carry none.
        They are computed chunk by chunk together with their gradient and never kept
        (`linear_cross_entropy`).
        A label >= vocab_size is an image code: its position is scored by the code output layer
        over the codes alone (a word is never a candidate for a code position, nor the reverse).
        """
        keep = labels != IGNORE_INDEX
        hidden, labels = hidden[keep], labels[keep]
        if self.code_head is None:
            return linear_cross_entropy(hidden, self.output_weight, labels) / max(int(labels.numel()), 1)
        is_code = labels >= self.config.code_offset
        total = hidden.new_zeros((), dtype=torch.float32)
        if bool(is_code.any()):
            total = total + linear_cross_entropy(
                hidden[is_code], self.code_head.weight, labels[is_code] - self.config.code_offset
            )
        if bool((~is_code).any()):
            total = total + linear_cross_entropy(hidden[~is_code], self.output_weight, labels[~is_code])
        return total / max(int(labels.numel()), 1)

    def step(
        self,
        input_ids: torch.Tensor,
        segment_ids: torch.Tensor,
        position_ids: torch.Tensor,
        mask: torch.Tensor,
        caches: list[KVCache] | None,
        patch_features: torch.Tensor | None = None,
        head: str = "word",
    ) -> tuple[torch.Tensor, list[KVCache]]:
        """One incremental pass for generation: logits [batch, seq, vocab] of the new positions
        (head="code": [batch, seq, n_image_codes] from the code output layer) and the per-layer
        caches extended by them."""
        x = self.embeddings(input_ids, segment_ids, position_ids, patch_features)
        new_caches = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, mask, caches[i] if caches is not None else None)
            new_caches.append(cache)
        hidden = self.ln_final(x)
        if head == "code":
            if self.code_head is None:
                raise ValueError("this M6 has no image codes (config.n_image_codes = 0)")
            return self.code_head(hidden), new_caches
        return hidden @ self.output_weight.to(hidden.dtype).T, new_caches


def count_parameters(config: M6Config) -> int:
    """Parameters of the model, counted on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        model = M6Model(config, seed=0)
    return sum(p.numel() for p in model.parameters())
