"""The AdamW a run's plugin can take.

Gemini steps only ColossalAI's own Adam kernels (`HybridAdam`, `FusedAdam`, `CPUAdam`: it
asserts the type at boost time), so a Gemini run gets `HybridAdam` in AdamW mode, which steps
the parameters Gemini keeps on the GPU with the fused CUDA kernel and those it offloads with
the CPU one. Every other plugin takes torch's fused AdamW (one kernel for all parameters; the
per-tensor ops cost about a third of a CPU step); `bf16-master` wraps it in fp32 master weights.
"""

from __future__ import annotations

import torch
from torch import nn

from m6_pipeline.training.config import OptimizerConfig
from m6_pipeline.training.precision import MasterWeightAdamW


def optimizer_class(plugin: str) -> type:
    """The optimizer type a run under `plugin` steps with."""
    if plugin == "gemini":
        from colossalai.nn.optimizer import HybridAdam

        return HybridAdam
    return torch.optim.AdamW


def make_optimizer(model: nn.Module, config: OptimizerConfig, *, plugin: str, precision: str):
    """AdamW over `model`'s parameters as `plugin` and `precision` need it. Under bf16-master
    the model is cast to bf16 here, before the master copy is taken."""
    adamw = {"lr": config.lr, "betas": config.betas, "weight_decay": config.weight_decay}
    cls = optimizer_class(plugin)
    if cls is not torch.optim.AdamW:
        return cls(model.parameters(), adamw_mode=True, **adamw)
    if precision == "bf16-master":
        model.to(torch.bfloat16)
        return MasterWeightAdamW(model, max_grad_norm=config.grad_clip, fused=True, **adamw)
    return torch.optim.AdamW(model.parameters(), fused=True, **adamw)
