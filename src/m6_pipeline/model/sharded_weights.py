"""An MoE M6 on disk with its experts in shards, readable at any expert-parallel size.

The dense weights are stored once (`model-dense.safetensors`); each expert-parallel shard in its
own file holding every MoE layer's expert stacks [experts of the shard, ...] for the global
experts [first, end) named in its metadata; an index (`model.safetensors.index.json`, after
Hugging Face's sharded checkpoints) lists the files, the dense names (`weight_map`) and the
expert ranges. The ranks that hold the weights write them, so no host ever holds all experts.

A model built at expert-parallel size E reads, from every file, the slices of the experts it
holds (`safe_open(...).get_slice`): resharding is splitting and concatenating along the expert
dimension by global expert index. The single-file form (`model.safetensors`, all experts) reads
the same way, as one shard holding experts [0, n_experts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from m6_pipeline.model.moe import MoELayer

INDEX, DENSE_FILE = "model.safetensors.index.json", "model-dense.safetensors"
FORMAT = "m6-expert-shards"


@dataclass(frozen=True)
class ExpertShard:
    """One file holding the global experts [first, end) of every MoE layer."""

    file: str
    first: int
    end: int


EXPERT_FILES = "model-experts-*.safetensors"  # the glob of expert_file's names


def expert_file(first: int, end: int) -> str:
    return f"model-experts-{first:05d}-{end:05d}.safetensors"


def index_files(index: Path) -> list[Path]:
    """Every file of the sharded form `index` names: the index, the dense file, each expert shard."""
    index = Path(index)
    shards = json.loads(index.read_text())["expert_shards"]
    return [index, index.parent / DENSE_FILE, *(index.parent / shard["file"] for shard in shards)]


def expert_names(model: nn.Module) -> list[str]:
    """Names of the expert stacks (dimension 0 = the experts this model holds)."""
    ids = {id(p) for layer in _moe_layers(model) for p in layer.expert_parameters()}
    return [name for name, p in model.named_parameters() if id(p) in ids]


def save_expert_sharded(model: nn.Module, directory: Path, *, dense: bool, experts: bool) -> None:
    """Write this rank's part of the sharded form into `directory`. dense: the dense weights and
    the index (one rank of all); experts: the experts this rank holds (one rank per expert shard,
    the first of its expert data-parallel group). The caller lets every rank pass a barrier
    before anyone reads the export."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    first, end, n_experts, ep_size = _held_experts(model)
    names = expert_names(model)
    if experts:
        state = {name: p.detach().contiguous() for name, p in model.named_parameters() if name in names}
        metadata = {"format": FORMAT, "first_expert": str(first), "end_expert": str(end), "n_experts": str(n_experts)}
        save_file(state, str(directory / expert_file(first, end)), metadata=metadata)
    if dense:
        state = {name: t.detach().contiguous() for name, t in model.state_dict().items() if name not in names}
        save_file(state, str(directory / DENSE_FILE), metadata={"format": FORMAT})
        step = n_experts // ep_size
        shards = [ExpertShard(expert_file(a, a + step), a, a + step) for a in range(0, n_experts, step)]
        index = {
            "metadata": {"format": FORMAT, "n_experts": n_experts, "expert_parameters": names},
            "weight_map": {name: DENSE_FILE for name in state},
            "expert_shards": [shard.__dict__ for shard in shards],
        }
        (directory / INDEX).write_text(json.dumps(index, indent=1))


def load_weights(model: nn.Module, weights: Path) -> tuple[list[str], list[str]]:
    """Load the sharded form (its index) or the single file into `model`, whatever its
    expert-parallel size; returns (missing, unexpected) dense names. Every expert the model holds
    must be found exactly once, else a ValueError names the missing or repeated ranges."""
    weights = Path(weights)
    if weights.name == INDEX:
        index = json.loads(weights.read_text())
        if index.get("metadata", {}).get("format") != FORMAT:
            raise ValueError(f"{weights} is not an M6 expert-sharded index (format {FORMAT!r}); re-export the model")
        dense_file = weights.parent / DENSE_FILE
        shards = [ExpertShard(**shard) for shard in index["expert_shards"]]
        n_saved = int(index["metadata"]["n_experts"])
    else:
        dense_file = weights
        n_saved = _n_experts(model)
        shards = [ExpertShard(weights.name, 0, n_saved)] if n_saved else []
    names = expert_names(model)
    if names:
        _check_coverage(shards, n_saved, _n_experts(model), weights)
        _load_experts(model, names, shards, weights.parent)
    return _load_dense(model, dense_file, set(names))


def _load_dense(model: nn.Module, path: Path, skip: set[str]) -> tuple[list[str], list[str]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the dense weights of {path.parent}; re-export the model")
    with safe_open(str(path), "pt") as f:
        state = {name: f.get_tensor(name) for name in f.keys() if name not in skip}
    result = model.load_state_dict(state, strict=False)
    return [n for n in result.missing_keys if n not in skip], list(result.unexpected_keys)


def _load_experts(model: nn.Module, names: list[str], shards: list[ExpertShard], directory: Path) -> None:
    first, end, _, _ = _held_experts(model)
    parameters = dict(model.named_parameters())
    for shard in shards:
        start, stop = max(first, shard.first), min(end, shard.end)
        if start >= stop:
            continue  # holds none of this rank's experts: never opened
        path = directory / shard.file
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: it holds experts [{shard.first}, {shard.end}); copy every "
                f"file the index names, or re-export the model"
            )
        with safe_open(str(path), "pt") as f:
            _check_shard_metadata(f.metadata(), shard, path)
            keys = set(f.keys())
            absent = [name for name in names if name not in keys]
            if absent:
                raise ValueError(f"{path} lacks the expert weights {absent}: it was written for another architecture")
            with torch.no_grad():
                for name in names:
                    part = f.get_slice(name)[start - shard.first : stop - shard.first]
                    parameters[name][start - first : stop - first].copy_(part)


def _check_shard_metadata(metadata: dict | None, shard: ExpertShard, path: Path) -> None:
    """A single file carries no ranges; an expert file must hold what the index says it does."""
    if not metadata or "first_expert" not in metadata:
        return
    saved = (int(metadata["first_expert"]), int(metadata["end_expert"]))
    if saved != (shard.first, shard.end):
        raise ValueError(
            f"{path} holds experts [{saved[0]}, {saved[1]}), the index says [{shard.first}, {shard.end}); "
            "the files come from different exports: re-export the model"
        )


def _check_coverage(shards: list[ExpertShard], n_saved: int, n_model: int, weights: Path) -> None:
    """Every expert 0..n-1 in exactly one shard."""
    if n_saved != n_model:
        raise ValueError(f"{weights} holds {n_saved} experts per MoE layer, the model {n_model}")
    ordered = sorted(shards, key=lambda s: (s.first, s.end))
    missing, repeated, reached, previous = [], [], 0, None
    for shard in ordered:
        if shard.first > reached:
            missing.append(f"[{reached}, {shard.first})")
        elif shard.first < reached:
            repeated.append(f"[{shard.first}, {min(reached, shard.end)}) in {previous} and {shard.file}")
        if shard.end > reached:
            reached, previous = shard.end, shard.file
    if reached < n_model:
        missing.append(f"[{reached}, {n_model})")
    if missing or repeated:
        raise ValueError(
            f"the expert shards of {weights} do not hold every expert exactly once: missing "
            f"{missing or 'none'}, repeated {repeated or 'none'}; export again from a complete run"
        )


def _moe_layers(model: nn.Module) -> list[MoELayer]:
    return [m for m in model.modules() if isinstance(m, MoELayer)]


def _n_experts(model: nn.Module) -> int:
    layers = _moe_layers(model)
    return layers[0].config.n_experts if layers else 0


def _held_experts(model: nn.Module) -> tuple[int, int, int, int]:
    """(first, end) global experts this model holds, n_experts and the expert-parallel size;
    the same in every MoE layer (one ExpertParallel for the model)."""
    layers = _moe_layers(model)
    if not layers:
        raise ValueError("the model has no MoE layer: export it as one file (safetensors save_model)")
    layer = layers[0]
    return layer.first_expert, layer.first_expert + layer.n_local, layer.config.n_experts, layer.ep.size
