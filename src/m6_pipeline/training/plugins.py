"""The ColossalAI Booster plugin a run names in its parameters.

torch_ddp trains on CPU with gloo (the default local run) and on GPUs with nccl; low_level_zero
(ZeRO-1/2), gemini (ZeRO-3 with chunked heterogeneous memory) and hybrid_parallel need CUDA,
which ColossalAI's kernels require.
"""

from __future__ import annotations

from m6_pipeline.training.config import PluginConfig

CUDA_ONLY = {"low_level_zero", "gemini", "hybrid_parallel", "moe_hybrid_parallel"}


def make_plugin(config: PluginConfig, *, use_gpu: bool, precision: str):
    from colossalai.booster.plugin import (
        GeminiPlugin,
        HybridParallelPlugin,
        LowLevelZeroPlugin,
        MoeHybridParallelPlugin,
        TorchDDPPlugin,
    )

    precision = "bf16" if precision.startswith("bf16") else precision
    if config.name in CUDA_ONLY and not use_gpu:
        raise ValueError(
            f"plugin {config.name!r} needs CUDA GPUs; on CPU use plugin.name: torch_ddp "
            "(conf/local does), or run with workers.use_gpu: true on a GPU cluster"
        )
    if config.name == "torch_ddp":
        # the patch projection is idle on text-only steps: DDP must not wait for its gradient
        return TorchDDPPlugin(find_unused_parameters=True)
    if config.name == "low_level_zero":
        return LowLevelZeroPlugin(stage=config.zero_stage, precision=precision)
    if config.name == "gemini":
        return GeminiPlugin(placement_policy=config.placement_policy, precision=precision)
    if config.name == "moe_hybrid_parallel":
        # groups for expert and expert-data parallelism, ZeRO over the expert-tagged parameters
        # and expert-aware checkpoint IO; the MoE layer itself is ours (capacity, dropping)
        return MoeHybridParallelPlugin(
            tp_size=1, pp_size=1, ep_size=config.ep_size, zero_stage=config.zero_stage, precision=precision
        )
    if config.tp_size > 1:
        # ColossalAI shards a model for TP through a shardformer policy; it ships policies for
        # Hugging Face models only, and one for M6 could not be tested without CUDA here.
        raise NotImplementedError(
            "tensor parallelism needs an M6 shardformer policy, not written yet; use gemini "
            "(ZeRO-3), which the planner shows fits M6-10B on the paper's cluster"
        )
    return HybridParallelPlugin(tp_size=1, pp_size=1, zero_stage=config.zero_stage, precision=precision)


def autocast_dtype(config: PluginConfig, precision: str):
    """torch_ddp keeps fp32 weights and runs the math in bf16 under autocast; the ZeRO plugins
    hold bf16 weights with fp32 master copies themselves."""
    import torch

    if precision == "bf16" and config.name == "torch_ddp":
        return torch.bfloat16
    return None
