"""Expert parallelism in the training loop: process groups, gradients, clipping, checkpoints.

With E expert-parallel ranks out of W, ranks [i*E, (i+1)*E) share one copy of all experts
(each rank holds m/E of them); ranks {j, j+E, j+2E, ...} hold the same experts and average their
gradients (the expert data-parallel group). Dense parameters are replicated over all W ranks and
averaged by DDP as before; DDP is told to leave the expert parameters alone.

An expert's gradient already sums the contributions of every rank's tokens (the all-to-all's
backward brings them home), so after the expert data-parallel sum it is divided by W to match
DDP's mean over ranks. Clipping is local, as §3.4 does: the dense gradients by their norm (the
same on every rank), each rank's experts by the norm of its own shard, with no all-rank norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from m6_pipeline.model.moe import ExpertParallel


@dataclass(frozen=True)
class ExpertGroups:
    ep: ExpertParallel
    expert_dp: dist.ProcessGroup | None
    expert_dp_size: int
    expert_dp_rank: int
    world_size: int

    @property
    def saves_experts(self) -> bool:
        """One rank per expert shard writes it to a checkpoint."""
        return self.expert_dp_rank == 0


def build_expert_groups(ep_size: int) -> ExpertGroups:
    """Every rank calls this (new_group is collective); works with or without a process group."""
    if not dist.is_initialized():
        if ep_size != 1:
            raise ValueError(f"ep_size={ep_size} needs torch.distributed; a single process holds all experts")
        return ExpertGroups(ExpertParallel(None, 1, 0), None, 1, 0, 1)
    world, rank = dist.get_world_size(), dist.get_rank()
    if world % ep_size:
        raise ValueError(
            f"ep_size={ep_size} does not divide the {world} workers; set plugin.ep_size to a divisor"
        )
    ep_group = dp_group = None
    for start in range(0, world, ep_size):
        group = dist.new_group(list(range(start, start + ep_size)))
        if start <= rank < start + ep_size:
            ep_group = group
    for offset in range(ep_size):
        group = dist.new_group(list(range(offset, world, ep_size)))
        if rank % ep_size == offset:
            dp_group = group
    return ExpertGroups(
        ExpertParallel.of(ep_group), dp_group, world // ep_size, rank // ep_size, world
    )


def exclude_from_ddp(model: nn.Module, expert_parameters: list[nn.Parameter]) -> None:
    """Before the Booster wraps the model: DDP neither broadcasts nor all-reduces these."""
    from torch.nn.parallel import DistributedDataParallel

    ids = {id(p) for p in expert_parameters}
    names = [name for name, p in model.named_parameters() if id(p) in ids]
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, names)


def sync_expert_gradients(expert_parameters: list[nn.Parameter], groups: ExpertGroups) -> None:
    """Sum over the ranks holding the same experts, then the mean over all ranks DDP uses."""
    grads = [p.grad for p in expert_parameters if p.grad is not None]
    if groups.expert_dp_size > 1:
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=groups.expert_dp)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
    for g in grads:
        g.div_(groups.world_size)


def clip_locally(
    dense: list[nn.Parameter], experts: list[nn.Parameter], max_norm: float
) -> tuple[float, float]:
    """Clip the dense gradients and this rank's expert gradients separately; returns both norms."""
    dense_norm = torch.nn.utils.clip_grad_norm_(dense, max_norm)
    expert_norm = torch.nn.utils.clip_grad_norm_(experts, max_norm) if experts else torch.zeros(())
    return float(dense_norm), float(expert_norm)


def _expert_state(model: nn.Module, expert_parameters: list[nn.Parameter]) -> dict[str, torch.Tensor]:
    ids = {id(p) for p in expert_parameters}
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if id(p) in ids}


def expert_shard_file(directory: Path, groups: ExpertGroups) -> Path:
    return Path(directory) / "experts" / f"ep-{groups.ep.rank:03d}-of-{groups.ep.size:03d}.safetensors"


def save_expert_shard(model: nn.Module, experts: list[nn.Parameter], directory: Path, groups: ExpertGroups) -> None:
    """This rank's experts, one file per expert-parallel rank (written by one rank per shard)."""
    from safetensors.torch import save_file

    if not groups.saves_experts:
        return
    path = expert_shard_file(directory, groups)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(_expert_state(model, experts), str(path), metadata={"ep_size": str(groups.ep.size)})


def load_expert_shard(model: nn.Module, experts: list[nn.Parameter], directory: Path, groups: ExpertGroups) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = expert_shard_file(directory, groups)
    if not path.exists():
        found = sorted(p.name for p in (Path(directory) / "experts").glob("*.safetensors"))
        raise FileNotFoundError(
            f"no expert shard {path.name} in {directory} (found {found}): resume with the "
            "expert-parallel size the checkpoint was written with"
        )
    with safe_open(str(path), "pt") as f:
        saved_size = int(f.metadata()["ep_size"])
    if saved_size != groups.ep.size:
        raise ValueError(f"checkpoint has ep_size={saved_size}, this run {groups.ep.size}")
    state = load_file(str(path))
    expected = _expert_state(model, experts)
    if state.keys() != expected.keys():
        raise ValueError(
            f"expert shard {path} does not match the model: missing {sorted(expected.keys() - state.keys())}, "
            f"unexpected {sorted(state.keys() - expected.keys())}"
        )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in state:
                p.copy_(state[name])
