"""Tensor parallelism (Megatron-style 1D) for M6: a ColossalAI shardformer policy.

ColossalAI ships shardformer policies for Hugging Face models only; `HybridParallelPlugin`
looks one up by the model's class name and finds none for `M6Model`, so M6 passes `M6Policy` as
its `custom_policy`. The policy lives here, in training/, so the model library stays free of
ColossalAI imports.

What it shards, per transformer block (dense or MoE), over the tensor-parallel group of size t:
- attention `qkv` (a FUSED q/k/v projection, rows laid out as (3, heads, head_dim)):
  column-parallel with `FusedLinear1D_Col(split_sizes=[d, d, d])`, so each rank keeps its own
  heads' rows of q, of k and of v ([Q_r; K_r; V_r]), not a contiguous third of the fused matrix;
  `n_heads` becomes n_heads / t (SelfAttention derives the head width from qkv's output);
- attention `proj`: row-parallel (`Linear1D_Row`): its input is the local heads' output, and
  the partial products are all-reduced before the (replicated) bias is added;
- dense FFN `fc`: column-parallel; dense FFN `proj`: row-parallel.
One all-reduce per sublayer in forward, one in backward (Megatron-LM, Shoeybi et al. 2019).

Left replicated, on purpose:
- the embeddings and the output layer tied to the word embeddings: the vocabulary (21128) is
  small next to the blocks (M6-10B: 86M of 10B parameters), and M6 computes logits only at the
  labelled positions, so a vocab-parallel embedding and cross entropy would save little memory
  for two more collectives and a padded vocabulary;
- layer norms and biases of row-parallel layers (a rounding error of the memory);
- the MoE experts and their gate (experts are sharded by expert parallelism instead); an MoE
  block's attention is a plain SelfAttention and is sharded like a dense block's.

Dropout inside the sharded region (SDPA's attention dropout on the local heads) draws from the
same generator state on every rank of the group, as the training loop seeds ranks of one
tensor-parallel group alike so that dropout in the replicated region agrees; the masks of
different head groups are then correlated, which Megatron avoids with a second seed. M6's
attention dropout is small (0.1) and the effect on training is not measured here.

Not supported (the policy refuses): pipeline parallelism and sequence parallelism.
"""

from __future__ import annotations

from torch import nn

from colossalai.shardformer.layer import FusedLinear1D_Col, Linear1D_Col, Linear1D_Row
from colossalai.shardformer.policies.base_policy import (
    ModulePolicyDescription,
    Policy,
    SubModuleReplacementDescription,
)
from m6_pipeline.model.blocks import FeedForward, SelfAttention
from m6_pipeline.model.config import M6Config


def check_tensor_parallel(config: M6Config, tp_size: int) -> None:
    """Raise a ValueError unless `tp_size` divides every dimension TP splits."""
    if tp_size < 1:
        raise ValueError(f"tp_size={tp_size} must be at least 1")
    has_dense_ffn = config.moe is None or not all(
        config.moe.is_moe_block(i) for i in range(config.n_layers)
    )
    widths = {"n_heads": config.n_heads, "d_model": config.d_model}
    if has_dense_ffn:
        widths["ffn_width (d_ff)"] = config.ffn_width
    bad = {name: value for name, value in widths.items() if value % tp_size}
    if bad:
        shown = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise ValueError(
            f"plugin.tp_size={tp_size} does not divide the model's {shown}: tensor parallelism "
            "gives each rank n_heads/tp_size heads and ffn_width/tp_size FFN columns; pick a "
            f"tp_size that divides n_heads={config.n_heads} and the FFN width {config.ffn_width}"
        )


class M6Policy(Policy):
    """Shards M6's attention and dense FFNs over `shard_config.tensor_parallel_process_group`;
    with tensor parallelism off (tp_size 1) it changes nothing."""

    def config_sanity_check(self) -> None:
        config = getattr(self.model, "config", None)
        if not isinstance(config, M6Config):
            raise TypeError(
                f"M6Policy shards an M6Model, not {type(self.model).__name__}; pass the model "
                "before wrapping it (the Booster does)"
            )
        if self.shard_config.pipeline_stage_manager is not None:
            raise ValueError("M6Policy has no pipeline stages: run with pp_size=1")
        if self.shard_config.enable_sequence_parallelism:
            raise ValueError("M6Policy has no sequence parallelism: leave it off")
        if self.shard_config.enable_tensor_parallelism:
            check_tensor_parallel(config, self.shard_config.tensor_parallel_size)

    def preprocess(self) -> nn.Module:
        return self.model

    def module_policy(self) -> dict[type[nn.Module], ModulePolicyDescription]:
        if not self.shard_config.enable_tensor_parallelism:
            return {}
        config: M6Config = self.model.config
        tp = self.shard_config.tensor_parallel_size
        comm = {"fp8_communication": self.shard_config.fp8_communication}
        d = config.d_model

        def column(suffix: str) -> SubModuleReplacementDescription:
            return SubModuleReplacementDescription(suffix, Linear1D_Col, kwargs=comm)

        def row(suffix: str) -> SubModuleReplacementDescription:
            return SubModuleReplacementDescription(suffix, Linear1D_Row, kwargs=comm)

        fused_qkv = SubModuleReplacementDescription(
            suffix="qkv", target_module=FusedLinear1D_Col, kwargs={"split_sizes": [d, d, d], **comm}
        )
        return {
            SelfAttention: ModulePolicyDescription(
                attribute_replacement={"n_heads": config.n_heads // tp},
                sub_module_replacement=[fused_qkv, row("proj")],
            ),
            FeedForward: ModulePolicyDescription(
                sub_module_replacement=[column("fc"), row("proj")]
            ),
        }

    def postprocess(self) -> nn.Module:
        return self.model
