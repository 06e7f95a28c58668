"""bf16 training with fp32 master weights (`precision: bf16-master`).

The model is held in bf16, so every op runs natively in bf16 with no autocast casts around it;
on a CPU at small width those casts cost more than the matrix products they save. The
optimizer keeps an fp32 master copy of every parameter, applies AdamW to it, and rounds the
result into the bf16 weights (Megatron's "main params"). The masters travel in the optimizer's
state dict, so a resumed run continues from exactly the same fp32 values.
"""

from __future__ import annotations

import torch
from torch import nn


class MasterWeightAdamW(torch.optim.AdamW):
    """AdamW over fp32 masters of a bf16 model. `step` copies the bf16 gradients into the
    masters, clips them by global norm (`max_grad_norm`), updates, and writes the weights back.
    `grad_norm` is the last step's pre-clip norm (None before the first clipped step)."""

    def __init__(self, model: nn.Module, *, max_grad_norm: float | None = None, **adamw) -> None:
        self.model_params = [p for p in model.parameters() if p.requires_grad]
        masters = [p.detach().float().clone() for p in self.model_params]
        super().__init__(masters, **adamw)
        self.max_grad_norm = max_grad_norm
        self.grad_norm: float | None = None

    @property
    def masters(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        for master, param in zip(self.masters, self.model_params, strict=True):
            master.grad = None if param.grad is None else param.grad.float()
        if self.max_grad_norm is not None:
            grads = [m for m in self.masters if m.grad is not None]
            self.grad_norm = float(torch.nn.utils.clip_grad_norm_(grads, self.max_grad_norm))
        loss = super().step(closure)
        for master, param in zip(self.masters, self.model_params, strict=True):
            param.copy_(master)
            master.grad = None
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.model_params:
            param.grad = None
        super().zero_grad(set_to_none)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["master_weights"] = [m.detach().clone() for m in self.masters]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        masters = state_dict.pop("master_weights", None)
        super().load_state_dict(state_dict)
        if masters is not None:
            with torch.no_grad():
                for master, saved, param in zip(self.masters, masters, self.model_params, strict=True):
                    master.copy_(saved)
                    param.copy_(saved)
