"""Gradient clipping under every plugin, and the pre-clip gradient norm each step logs.

Whoever holds the gradients when the step runs clips them:
- torch_ddp: the loop, after backward (DDP has averaged the dense gradients). With an MoE model
  and `expert_clipping: local` (§3.4) the dense gradients are clipped by their own norm and each
  rank's experts by the norm of its own shard (`experts.clip_locally`).
- torch_ddp with `precision: bf16-master`: MasterWeightAdamW, over its fp32 master gradients.
- low_level_zero, gemini, hybrid_parallel, moe_hybrid_parallel: the plugin's optimizer, inside
  `step()`. ZeRO has moved the gradients into its buckets by then (`param.grad` is None), so a
  clip from outside would see nothing: the plugin gets `max_norm`, and reports the norm it
  computed through `get_grad_norm()` (in bf16 and fp32 there is no loss scale in it).
ColossalAI's MoE optimizers clip each rank by one coefficient from its dense gradients and its
own experts (no norm spans all experts, but the dense gradients are not clipped apart; the ZeRO
one logs the sum of the dense and the expert norm, as ColossalAI 0.5 computes it), so
`expert_clipping: local` under moe_hybrid_parallel is refused when the plugin is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from m6_pipeline.training.config import OptimizerConfig, PluginConfig
from m6_pipeline.training.experts import clip_locally

Owner = Literal["loop", "master_weights", "plugin"]


@dataclass(frozen=True)
class ClipPlan:
    """Who clips, at which norm, and whether experts are clipped apart from the dense part."""

    owner: Owner
    max_norm: float
    local_experts: bool = False

    def plugin_kwargs(self) -> dict[str, float]:
        """What the Booster plugin is built with: ColossalAI's `max_norm` (0 leaves it off)."""
        return {"max_norm": self.max_norm} if self.owner == "plugin" else {}


def clip_plan(plugin: PluginConfig, optimizer: OptimizerConfig, *, precision: str, moe: bool) -> ClipPlan:
    """The clipping a run gets; refuses one its plugin cannot honour."""
    if plugin.name == "torch_ddp":
        owner = "master_weights" if precision == "bf16-master" else "loop"
        return ClipPlan(owner, optimizer.grad_clip, moe and optimizer.expert_clipping == "local")
    if moe and optimizer.expert_clipping == "local":
        raise ValueError(
            f"plugin {plugin.name} clips each rank's gradients by one norm over its dense "
            "parameters and its own experts (ColossalAI's MoE optimizer); it cannot clip the "
            "experts apart from the dense gradients as optimizer.expert_clipping: local asks "
            "(§3.4). Set optimizer.expert_clipping: with_dense, or train with plugin.name: torch_ddp"
        )
    return ClipPlan("plugin", optimizer.grad_clip)


def clip_before_step(plan: ClipPlan, dense: list[nn.Parameter], experts: list[nn.Parameter]) -> dict:
    """Clip the gradients the loop owns (after backward and the expert gradient sync); returns
    their pre-clip norms for the step record, {} when the optimizer clips inside `step()`.
    `expert_grad_norm` is this rank's experts' norm."""
    if plan.owner != "loop":
        return {}
    if experts and plan.local_experts:
        dense_norm, expert_norm = clip_locally(dense, experts, plan.max_norm)
        return {"grad_norm": dense_norm, "expert_grad_norm": expert_norm}
    return {"grad_norm": float(torch.nn.utils.clip_grad_norm_(dense + experts, plan.max_norm))}


def norm_after_step(plan: ClipPlan, optimizer) -> dict:
    """The pre-clip norm the optimizer computed in `step()` (the plugin's or the master-weight
    optimizer's); {} when the loop clipped. A plugin that reports none says so in the record."""
    if plan.owner == "loop":
        return {}
    inner = getattr(optimizer, "optim", optimizer)
    norm = inner.grad_norm if plan.owner == "master_weights" else optimizer.get_grad_norm()
    if norm is None:
        return {
            "grad_norm": None,
            "grad_norm_missing": f"{type(optimizer).__name__} computed no gradient norm this step "
            "(a step skipped after an overflow, or clipping off)",
        }
    return {"grad_norm": float(norm)}
