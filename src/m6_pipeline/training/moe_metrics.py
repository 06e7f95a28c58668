"""What the MoE layers did during training, over all ranks: the drop rate and router losses of
every step, and each expert's share of the routed tokens per evaluation window. The window's
running load is part of the training state, so a resumed run reports what an unbroken one does."""

from __future__ import annotations

import torch
import torch.distributed as dist

from m6_pipeline.model.m6 import M6Model


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


class MoEMeter:
    def __init__(self, model: M6Model, n_experts: int) -> None:
        self.model = model
        self.load = torch.zeros(len(model.moe_layers), n_experts, dtype=torch.float64)

    def step(self) -> dict[str, float]:
        """After a training forward: the LM loss (comparable with a dense run), the router
        losses, and the fraction of expert assignments dropped over capacity on all ranks."""
        stats = self.model.moe_statistics()
        counts = torch.tensor(
            [sum(s.n_dropped for s in stats), sum(s.n_assignments for s in stats)], dtype=torch.float64
        )
        load = torch.stack([s.load.double().cpu() for s in stats])
        reduced = _all_reduce(torch.cat([counts, load.reshape(-1)]))  # one small collective
        dropped, assignments = reduced[:2].tolist()
        self.load += reduced[2:].view_as(load)
        losses = self.model.last_losses
        return {
            "loss": losses["lm"], "aux_loss": losses["aux"], "z_loss": losses["z"],
            "drop_rate": dropped / max(1.0, assignments),
        }

    def state(self) -> list:
        return self.load.tolist()

    def restore(self, running_load: list) -> None:
        self.load = torch.tensor(running_load, dtype=torch.float64)

    def window_load(self) -> dict[str, list]:
        """Each MoE layer's per-expert share of the assignments since the last call (before
        capacity), and its busiest expert relative to a perfectly even split (1.0 = even)."""
        load = self.load.clone()
        self.load.zero_()
        share = load / load.sum(1, keepdim=True).clamp(min=1)
        return {
            "share": [[round(v, 5) for v in row] for row in share.tolist()],
            "max_over_mean": (share.max(1).values * share.shape[1]).tolist(),
        }
