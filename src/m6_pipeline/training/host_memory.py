"""Host memory of one node of a GPU cluster, beside the planner's per-GPU figures.

Pure arithmetic, bytes; the planner (training/planner.py) calls it for GPU clusters. On a CPU
cluster the device plan already is the host's (each worker's share of it). The node planned is
the first, rank 0's, which also writes the final weights. Every worker process on the node
(one per GPU) holds:
- model build: under eager initialisation the whole model in fp32 (4 bytes per parameter, the
  experts of its expert-parallel rank only), before the Booster moves it to the GPU. Under lazy
  initialisation (training/lazy_init.py) Gemini and LowLevelZero materialise one parameter at a
  time on the host (fp32, and its bf16 cast), so the largest tensor counts; the hybrid plugins
  materialise the rank's tensor-/expert-parallel part whole after shardformer has cut it.
- optimizer offload: Gemini's `offload_optim_frac` of the rank's fp32 master weights and AdamW
  moments (12 bytes per parameter over the ZeRO ranks) lives in host memory instead of the GPU.
- data loading: the shard reader's row groups, the validation batches and two batches in
  flight (three int64 [batch, seq] tensors and the fp32 patch features).
- checkpoint staging: each rank's checkpoint shard on its way to disk (ColossalAI writes shards
  of `size_per_shard`, 1024 MB by default), and the final export: the dense weights from rank 0,
  each expert shard from the rank holding it (model/sharded_weights.py), never all experts on
  one host.
- runtime: the interpreter, torch, the CUDA and NCCL host-side libraries and buffers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from m6_pipeline.model.config import M6Config

GIB = 2**30
# plugins whose Booster materialises a lazy model one parameter at a time (the others after
# shardformer has cut the whole module)
PER_TENSOR_MATERIALISATION = frozenset({"gemini", "low_level_zero"})


class HostMemory(BaseModel):
    """Host bytes of one node (rank 0's); the parts sum to `total_bytes`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers_per_node: int
    model_build: Literal["eager", "lazy"]
    model_build_bytes: float
    optimizer_offload_bytes: float
    data_loading_bytes: float
    checkpoint_staging_bytes: float
    runtime_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    shortfall_bytes: float

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    def parts(self) -> dict[str, float]:
        return {
            f"model build ({self.model_build})": self.model_build_bytes,
            "optimizer offload": self.optimizer_offload_bytes,
            "data loading": self.data_loading_bytes,
            "checkpoint staging": self.checkpoint_staging_bytes,
            "runtime": self.runtime_bytes,
        }

    def breakdown(self) -> str:
        return ", ".join(f"{name} {value / GIB:.1f}" for name, value in self.parts().items())


def largest_tensor(config: M6Config, ep_size: int) -> int:
    """Elements of the model's largest parameter on one expert-parallel rank: the word
    embedding (tied output layer), the FFN's matrices, qkv, the patch projection or the
    rank's stacked expert weights [experts / ep, d_model, expert width]."""
    d = config.d_model
    sizes = [
        config.vocab_size * d,
        config.max_positions * d,
        d * config.ffn_width,
        3 * d * d,
        config.d_patch_feature * d,
        config.n_image_codes * d,
    ]
    if config.moe is not None:
        sizes.append(config.moe.n_experts // ep_size * d * config.expert_width)
    return max(sizes)


def model_build_bytes_per_worker(
    config: M6Config, *, plugin: str, lazy: bool, precision: str, built_params: float,
    rank_params: float, ep_size: int,
) -> float:
    """Host bytes one worker holds while its model is built and handed to the Booster.
    built_params: what an eager build makes (every dense parameter, the rank's 1/ep of the
    experts); rank_params: what the rank keeps after tensor/expert sharding."""
    if not lazy:
        return 4.0 * built_params
    if plugin in PER_TENSOR_MATERIALISATION:
        return (4.0 + (2.0 if precision == "bf16" else 0.0)) * largest_tensor(config, ep_size)
    return 4.0 * rank_params


def data_loading_bytes_per_worker(
    config: M6Config, *, micro_batch: int, seq_len: int, reader_gib: float
) -> float:
    """The reader's allowance plus two batches in flight."""
    batch = micro_batch * (3 * 8 * seq_len + 4 * config.n_patches * config.d_patch_feature)
    return reader_gib * GIB + 2 * batch


def plan_host_memory(
    *, workers_per_node: int, lazy: bool, build_bytes_per_worker: float,
    offload_bytes_per_worker: float, data_bytes_per_worker: float, checkpoint_shard_gib: float,
    final_weights_bytes: float, runtime_gib_per_worker: float, capacity_gib: float,
) -> HostMemory:
    """Rank 0's node: per-worker figures times the workers, plus the final weights."""
    w = workers_per_node
    parts = {
        "model_build_bytes": w * build_bytes_per_worker,
        "optimizer_offload_bytes": w * offload_bytes_per_worker,
        "data_loading_bytes": w * data_bytes_per_worker,
        "checkpoint_staging_bytes": w * checkpoint_shard_gib * GIB + final_weights_bytes,
        "runtime_bytes": w * runtime_gib_per_worker * GIB,
    }
    total = sum(parts.values())
    capacity = capacity_gib * GIB
    return HostMemory(
        workers_per_node=w,
        model_build="lazy" if lazy else "eager",
        **parts,
        total_bytes=total,
        capacity_bytes=capacity,
        fits=total <= capacity,
        shortfall_bytes=max(0.0, total - capacity),
    )
