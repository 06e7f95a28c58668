"""Resumable state of a single-process training loop (the VQGAN, task finetuning): one file,
replaced atomically, holding model, optimiser, step, history and the RNG state."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def save_state(path: Path, state: dict) -> None:
    """Write `state` (with torch's RNG state added) to `path`; a crash mid-write leaves the
    previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({**state, "rng": torch.get_rng_state()}, tmp)
    tmp.replace(path)


def load_state(path: Path, config: dict) -> dict | None:
    """The state at `path` (restoring torch's RNG state), or None when there is none. A state
    saved with another `config` (other model, other inputs) is never resumed: it is moved aside
    to `<name>.stale` and the run starts over."""
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("config") != config:
        stale = path.with_name(path.name + ".stale")
        path.replace(stale)
        log.warning("%s was saved by a run of another configuration or inputs: moved to %s, "
                    "starting over", path, stale)
        return None
    torch.set_rng_state(state.pop("rng"))
    return state
