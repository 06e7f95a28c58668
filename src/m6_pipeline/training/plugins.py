"""The ColossalAI Booster plugin a run names in its parameters.

torch_ddp trains on CPU with gloo (the default local run) and on GPUs with nccl; low_level_zero
(ZeRO-1/2), gemini (ZeRO-3 with chunked heterogeneous memory) and hybrid_parallel need CUDA,
which ColossalAI's kernels require. hybrid_parallel with tp_size > 1 shards M6's attention and
dense FFNs over tensor-parallel groups through `M6Policy` (training/tensor_parallel.py).
The plugins that own the gradients are built with the run's `max_norm` (training/clipping.py).
"""

from __future__ import annotations

from m6_pipeline.model.config import M6Config
from m6_pipeline.training.clipping import clip_plan
from m6_pipeline.training.config import OptimizerConfig, PluginConfig

CUDA_ONLY = {"low_level_zero", "gemini", "hybrid_parallel", "moe_hybrid_parallel"}


def make_plugin(
    config: PluginConfig, *, use_gpu: bool, precision: str, model: M6Config, optimizer: OptimizerConfig
):
    """The Booster plugin of `config`. `model` is checked against the tensor-parallel degree
    and `optimizer` against what the plugin's clipping can honour before any process group is
    built, so a bad setting fails with a message, not deep inside ColossalAI."""
    from colossalai.booster.plugin import (
        GeminiPlugin,
        HybridParallelPlugin,
        LowLevelZeroPlugin,
        MoeHybridParallelPlugin,
        TorchDDPPlugin,
    )

    from m6_pipeline.training.tensor_parallel import M6Policy

    clipping = clip_plan(config, optimizer, precision=precision, moe=model.moe is not None).plugin_kwargs()
    precision = "bf16" if precision.startswith("bf16") else precision
    _check_hybrid(config, model, precision)
    if config.name in CUDA_ONLY and not use_gpu:
        raise ValueError(
            f"plugin {config.name!r} needs CUDA GPUs; on CPU use plugin.name: torch_ddp "
            "(conf/local does), or run with workers.use_gpu: true on a GPU cluster"
        )
    if config.name == "torch_ddp":
        # the patch projection is idle on text-only steps: DDP must not wait for its gradient
        return TorchDDPPlugin(find_unused_parameters=True)
    if config.name == "low_level_zero":
        return LowLevelZeroPlugin(stage=config.zero_stage, precision=precision, **clipping)
    if config.name == "gemini":
        return GeminiPlugin(placement_policy=config.placement_policy, precision=precision, **clipping)
    if config.name == "moe_hybrid_parallel":
        # groups for expert and expert-data parallelism, ZeRO over the expert-tagged parameters
        # and expert-aware checkpoint IO; the MoE layer itself is ours (capacity, dropping)
        return MoeHybridParallelPlugin(
            tp_size=1, pp_size=1, ep_size=config.ep_size, zero_stage=config.zero_stage,
            precision=precision, **clipping,
            custom_policy=M6Policy(),  # ColossalAI has no built-in policy for M6 (tp 1: no change)
        )
    # ColossalAI looks a shardformer policy up by the model's class and ships none for M6, so
    # M6Policy is passed even at tp_size 1 (where it shards nothing). find_unused_parameters:
    # at zero_stage 0 the plugin wraps DDP, and the patch projection is idle on text-only steps.
    return HybridParallelPlugin(
        tp_size=config.tp_size, pp_size=1, zero_stage=config.zero_stage, precision=precision,
        custom_policy=M6Policy(), find_unused_parameters=True, **clipping,
    )


def _check_hybrid(config: PluginConfig, model: M6Config, precision: str) -> None:
    """What the hybrid plugins and tensor parallelism need of the settings and the model, as
    clear errors instead of ColossalAI's assertions at boost time."""
    from m6_pipeline.training.tensor_parallel import check_tensor_parallel

    hybrid = config.name in {"hybrid_parallel", "moe_hybrid_parallel"}
    if hybrid and config.zero_stage > 0 and precision == "fp32":
        raise ValueError(
            f"{config.name} runs ZeRO stage {config.zero_stage} in bf16 only; set precision: "
            "bf16 or plugin.zero_stage: 0"
        )
    if config.tp_size == 1:
        return
    if config.name != "hybrid_parallel":
        raise ValueError(
            f"plugin.tp_size={config.tp_size} needs plugin.name: hybrid_parallel (not "
            f"{config.name!r}); or set tp_size: 1"
        )
    check_tensor_parallel(model, config.tp_size)


def autocast_dtype(config: PluginConfig, precision: str):
    """torch_ddp keeps fp32 weights and runs the math in bf16 under autocast; the ZeRO plugins
    hold bf16 weights with fp32 master copies themselves."""
    import torch

    if precision == "bf16" and config.name == "torch_ddp":
        return torch.bfloat16
    return None
