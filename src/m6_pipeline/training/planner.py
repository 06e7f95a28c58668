"""Memory and throughput plan of an M6 pretraining run, before any worker starts.

Pure arithmetic on an `M6Config`, a `ClusterSpec` and `PlanSettings`; nothing here imports Ray or
ColossalAI. Byte counts are per device (GPU, or CPU worker process) unless a name says otherwise.

Model states, bytes per parameter (Rajbhandari et al. 2020, ZeRO):
- bf16 under the ZeRO plugins (low_level_zero, gemini, hybrid_parallel): bf16 weight 2, bf16
  gradient 2, fp32 master weight + AdamW's two moments 12. ZeRO stage 1 shards the 12 over the
  data-parallel ranks, stage 2 also the gradients, stage 3 (gemini) also the weights; a stage-3
  rank gathers two layers' bf16 weights at a time (the one it computes and the one it prefetches).
- bf16 under torch_ddp: autocast keeps fp32 weights (4) and caches a bf16 copy of each for the
  step (2), fp32 gradients (4), fp32 moments (8), and DDP's gradient buckets (4; ColossalAI's
  TorchDDPPlugin leaves gradient_as_bucket_view off). Nothing is sharded.
- fp32: weight 4, gradient 4, moments 8 (+ 4 of DDP buckets under torch_ddp).
Tensor parallelism (`M6Policy`, training/tensor_parallel.py) divides the blocks' model states by
tp_size (layer norms and biases, replicated in practice, are a rounding error); the embeddings,
the tied output layer and the patch projection stay replicated on every rank, and so does the
output layer's logit memory below.

Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer
Models", Eq. 2 and §4.1), with s = seq_len, b = micro-batch, h = d_model, a = heads, t = tp_size:
- without recomputation, per layer: s·b·h·(10 + 24/t + 5·a·s/(h·t)) bytes for 16-bit
  activations (= sbh(34 + 5as/h) at t = 1);
- full activation checkpointing: each layer keeps its input, 2·s·b·h bytes, and backward
  rebuilds one layer's working set at a time: 2sbh·(L - 1) + one layer's bytes above (the
  rebuilt layer's input is the one already kept).
The 5as/h term counts the softmax scores and dropout mask of materialised attention; M6's fused
`scaled_dot_product_attention` keeps neither, so for M6 the figure is an upper bound. fp32
doubles every activation byte. The output layer (model/linear_cross_entropy.py) computes its
logits and their gradient one chunk of r tokens at a time and keeps none: one chunk's fp32
logits and bf16 gradient, 6·r·V bytes with r = min(s·b, chunk_rows), plus what it hands to the
backward pass, the hidden states' gradient (2·s·b·h) and an fp32 gradient of the output weight
(4·V·h); whatever t, as the output layer is not vocab-parallel. An upper bound, as M6 computes
logits only at labelled positions.

On top of the allocated bytes, an allowance for the caching allocator's fragmentation
(`fragmentation` × allocated) and for what the runtime holds (`runtime_reserved_gib`: CUDA
context, NCCL buffers and kernels' workspaces on a GPU; the Python interpreter and torch on a CPU
worker).

Throughput: model FLOPs per token 6·N + 12·L·h·s (Kaplan et al. 2020's 6N for the forward and
backward matrix products, N the parameters in matrix products: blocks, final norm and the tied
output layer; plus the attention scores and values over s keys, forward and backward). Full
activation checkpointing repeats the forward, 8·N + 16·L·h·s hardware FLOPs per token. `mfu` is
the model-FLOPs utilisation reached without recomputation; the plan holds the hardware rate fixed
so checkpointing lowers the planned MFU by model/hardware FLOPs.

Mixture of Experts (M6-100B): N above counts the *active* parameters — the dense ones, each MoE
layer's gate, and top_k experts per token — while the memory counts every parameter. Expert
parameters are split over `ep_size` ranks and their optimizer states (ZeRO-1 and up) over the
n_devices / ep_size ranks that hold the same experts; the dense part is planned as above. An MoE
layer also keeps its dispatched tokens in and out of the experts and of the all-to-all, about
k·c·s·b·h·(4 + 2·f/h) bytes in 16 bits (f the expert width, c the capacity factor).

Host memory: on a GPU cluster, one node's (`HostMemory`, training/host_memory.py: model build,
Gemini's optimizer offload, data loading, checkpoint staging, runtime) beside the GPU's; a plan
fits when both do.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.linear_cross_entropy import chunk_rows
from m6_pipeline.training import host_memory
from m6_pipeline.training.host_memory import GIB, HostMemory
from m6_pipeline.training.lazy_init import SHARDING_PLUGINS

Plugin = Literal["torch_ddp", "low_level_zero", "gemini", "hybrid_parallel", "moe_hybrid_parallel"]

# name: (memory GiB as the driver reports it, dense bf16 tensor TFLOP/s, fp32 TFLOP/s), SXM parts
GPU_PRESETS: dict[str, tuple[float, float, float]] = {
    "A100-40GB": (40.0, 312.0, 19.5),
    "A100-80GB": (80.0, 312.0, 19.5),
    "H100-80GB": (80.0, 989.0, 67.0),
    "H200": (140.0, 989.0, 67.0),
}
# host memory of a typical 8-GPU node of each GPU, GiB (DGX A100: 1 TiB; DGX H100/H200: 2 TiB)
NODE_HOST_MEMORY_GIB: dict[str, float] = {
    "A100-40GB": 1024.0,
    "A100-80GB": 1024.0,
    "H100-80GB": 2048.0,
    "H200": 2048.0,
}
CPU_HOST_MEMORY_GIB = 24.0  # this machine
# which plugin allows which ZeRO stages, and its default stage
ZERO_STAGES: dict[str, tuple[tuple[int, ...], int]] = {
    "torch_ddp": ((0,), 0),
    "low_level_zero": ((1, 2), 2),
    "gemini": ((3,), 3),
    "hybrid_parallel": ((0, 1, 2), 0),
    "moe_hybrid_parallel": ((0, 1, 2), 1),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClusterSpec(_Frozen):
    """n_gpus identical GPUs in nodes of gpus_per_node, or (n_gpus = 0) one host running
    n_workers CPU processes that share its memory and its FLOP/s."""

    name: str = "A100-80GB"
    n_gpus: int = Field(1, ge=0)
    gpu_memory_gib: float = Field(80.0, gt=0)
    peak_tflops_bf16: float = Field(
        312.0, gt=0, description="dense bf16 per GPU (A100 312, H100/H200 989)"
    )
    peak_tflops_fp32: float = Field(19.5, gt=0, description="fp32 per GPU without TF32")
    n_workers: int = Field(0, ge=0, description="CPU worker processes when n_gpus = 0")
    gpus_per_node: int = Field(8, ge=1, description="GPUs (worker processes) per node")
    host_memory_gib: float = Field(
        CPU_HOST_MEMORY_GIB, gt=0,
        description="one host's memory: shared by the CPU workers (n_gpus = 0), or of each GPU "
        "node (default for GPUs: 1024, a DGX A100; 2048 for H100/H200 DGX-class nodes)",
    )
    host_peak_gflops_bf16: float = Field(
        760.0, gt=0, description="whole host, all threads: torch.matmul 2048^3 bf16 (measured here)"
    )
    host_peak_gflops_fp32: float = Field(187.0, gt=0, description="whole host, fp32 matmul")

    @model_validator(mode="before")
    @classmethod
    def _default_host_memory(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("host_memory_gib") is None and data.get("n_gpus", 1) > 0:
            data = {**data, "host_memory_gib": NODE_HOST_MEMORY_GIB["A100-80GB"]}
        return data

    @model_validator(mode="after")
    def _has_devices(self) -> ClusterSpec:
        if self.n_gpus == 0 and self.n_workers == 0:
            raise ValueError(
                f"cluster {self.name!r} has no devices: give n_gpus > 0, or n_gpus = 0 and "
                "n_workers > 0 CPU processes"
            )
        return self

    @classmethod
    def of_gpu(cls, gpu: str, n_gpus: int) -> ClusterSpec:
        """n_gpus of a preset GPU (`GPU_PRESETS`)."""
        if gpu not in GPU_PRESETS:
            raise ValueError(f"unknown GPU {gpu!r}; presets are {sorted(GPU_PRESETS)}")
        memory, bf16, fp32 = GPU_PRESETS[gpu]
        return cls(
            name=f"{n_gpus}x{gpu}",
            n_gpus=n_gpus,
            gpu_memory_gib=memory,
            peak_tflops_bf16=bf16,
            peak_tflops_fp32=fp32,
            host_memory_gib=NODE_HOST_MEMORY_GIB[gpu],
        )

    @classmethod
    def cpu_host(cls, n_workers: int, host_memory_gib: float = 24.0, **peaks: float) -> ClusterSpec:
        """The local run: n_workers CPU processes on one host (defaults: this 2-core machine)."""
        return cls(
            name=f"cpu-{n_workers}w",
            n_gpus=0,
            n_workers=n_workers,
            host_memory_gib=host_memory_gib,
            **peaks,
        )

    @property
    def on_cpu(self) -> bool:
        return self.n_gpus == 0

    @property
    def n_devices(self) -> int:
        return self.n_workers if self.on_cpu else self.n_gpus

    @property
    def workers_per_node(self) -> int:
        return self.n_workers if self.on_cpu else min(self.gpus_per_node, self.n_gpus)

    @property
    def device_memory_bytes(self) -> float:
        """A GPU's memory, or a CPU worker's share of the host's."""
        gib = self.host_memory_gib / self.n_workers if self.on_cpu else self.gpu_memory_gib
        return gib * GIB

    def peak_flops(self, precision: str) -> float:
        """Peak FLOP/s of one device: a GPU, or a CPU worker's share of the host."""
        if self.on_cpu:
            host = self.host_peak_gflops_bf16 if precision == "bf16" else self.host_peak_gflops_fp32
            return host * 1e9 / self.n_workers
        return (self.peak_tflops_bf16 if precision == "bf16" else self.peak_tflops_fp32) * 1e12


class PlanSettings(_Frozen):
    plugin: Plugin = "torch_ddp"
    zero_stage: int | None = Field(
        None, description="defaults per plugin: ddp 0, lowlevel 2, gemini 3, hybrid 0"
    )
    tp_size: int = Field(1, ge=1, description="tensor-parallel degree (hybrid_parallel only)")
    ep_size: int = Field(1, ge=1, description="expert-parallel degree of an MoE model")
    pp_size: int = Field(1, ge=1, description="pipeline stages: only 1 is planned")
    micro_batch_size: int = Field(8, ge=1, description="sequences per data-parallel rank per step")
    seq_len: int = Field(512, ge=1, description="positions per sequence (patches + text)")
    precision: Literal["bf16", "fp32"] = "bf16"
    activation_checkpointing: bool = False
    mfu: float = Field(
        0.45, gt=0, le=1, description="model-FLOPs utilisation without recomputation"
    )
    optimizer: Literal["adamw"] = "adamw"
    fragmentation: float = Field(
        0.10, ge=0, description="allocator fragmentation, share of allocated"
    )
    runtime_reserved_gib: float = Field(1.5, ge=0, description="CUDA context, NCCL, workspaces")
    lazy_init: bool | None = Field(
        None, description="build the model under LazyInitContext; defaults as the training loop "
        "does: lazy under the sharding plugins, eager under torch_ddp",
    )
    offload_optim_frac: float = Field(
        0.0, ge=0, le=1, description="gemini: share of the optimizer states (fp32 master weights "
        "and moments) in host memory (GeminiPlugin's offload_optim_frac)",
    )
    host_runtime_gib: float = Field(3.0, ge=0, description="host memory of one GPU worker process")
    host_data_loading_gib: float = Field(
        1.0, ge=0, description="host memory of one worker's shard reader and validation batches"
    )
    checkpoint_shard_gib: float = Field(
        1.0, ge=0, description="one checkpoint shard staged per worker (size_per_shard 1024 MB)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_zero_stage(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("zero_stage") is None:
            plugin = data.get("plugin", "torch_ddp")
            if plugin in ZERO_STAGES:
                data = {**data, "zero_stage": ZERO_STAGES[plugin][1]}
        if isinstance(data, dict) and data.get("lazy_init") is None:
            data = {**data, "lazy_init": data.get("plugin", "torch_ddp") in SHARDING_PLUGINS}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> PlanSettings:
        allowed, _ = ZERO_STAGES[self.plugin]
        if self.zero_stage not in allowed:
            raise ValueError(
                f"plugin {self.plugin!r} runs ZeRO stage(s) {allowed}, not {self.zero_stage}; "
                "use gemini for stage 3, low_level_zero for 1-2, torch_ddp for none"
            )
        if self.tp_size > 1 and self.plugin != "hybrid_parallel":
            raise ValueError(
                f"tp_size={self.tp_size} needs plugin 'hybrid_parallel', not {self.plugin!r}"
            )
        if self.lazy_init and self.plugin not in SHARDING_PLUGINS:
            raise ValueError(
                f"lazy_init needs a plugin that shards the parameters ({sorted(SHARDING_PLUGINS)}); "
                f"{self.plugin!r} replicates the model, so every worker builds it whole: set "
                "lazy_init: false or plugin: gemini"
            )
        if self.offload_optim_frac > 0 and self.plugin != "gemini":
            raise ValueError(
                f"offload_optim_frac={self.offload_optim_frac} is Gemini's optimizer offload; set "
                f"plugin: gemini or offload_optim_frac: 0 (not {self.plugin!r})"
            )
        if self.pp_size != 1:
            raise ValueError(
                f"pp_size={self.pp_size}: the planner (and the training loop) cover no pipeline "
                "parallelism; set pp_size: 1 and shard with ZeRO-3 (gemini) or tensor parallelism"
            )
        return self


class Plan(_Frozen):
    """Per-device bytes and cluster throughput of one run; `model_dump()` is plain JSON."""

    config: M6Config
    cluster: ClusterSpec
    settings: PlanSettings
    n_params_full: int = Field(
        description="every parameter, embeddings and patch projection included"
    )
    n_params_non_embedding: int = Field(description="blocks and final norm")
    n_params_matmul: int = Field(
        description="parameters in matrix products a token passes through: blocks (active "
        "experts only) + tied output layer"
    )
    n_params_experts: int = Field(0, description="MoE expert parameters (all experts)")
    expert_parallel_size: int = 1
    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int
    n_devices: int
    data_parallel_size: int
    device_kind: Literal["gpu", "cpu"]
    parameters_bytes: float
    gradients_bytes: float
    optimizer_states_bytes: float
    communication_buffers_bytes: float = Field(description="DDP gradient buckets")
    gathered_parameters_bytes: float = Field(description="ZeRO-3: two layers' gathered weights")
    activations_per_layer_bytes: float = Field(description="one layer, no recomputation")
    activations_bytes: float = Field(
        description="all layers as planned (with or without checkpointing)"
    )
    activations_no_checkpointing_bytes: float
    activations_checkpointing_bytes: float
    output_layer_bytes: float = Field(description="logits' softmax and gradient")
    allocated_bytes: float
    allowance_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    shortfall_bytes: float = Field(description="total - capacity, 0 when it fits")
    host: HostMemory | None = Field(
        description="one node's host memory (GPU clusters); None on CPU, whose device plan is the host's"
    )
    model_flops_per_token: float
    hardware_flops_per_token: float
    peak_flops_per_device: float
    mfu_planned: float
    tokens_per_step: int
    global_batch_size: int
    tokens_per_s: float
    samples_per_s: float
    step_time_s: float

    @property
    def total_gib(self) -> float:
        return self.total_bytes / GIB

    @property
    def device_fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def breakdown(self) -> str:
        parts = {
            "parameters": self.parameters_bytes + self.gathered_parameters_bytes,
            "gradients": self.gradients_bytes + self.communication_buffers_bytes,
            "optimizer states": self.optimizer_states_bytes,
            "activations": self.activations_bytes + self.output_layer_bytes,
            "allowance": self.allowance_bytes,
        }
        return ", ".join(f"{name} {value / GIB:.1f}" for name, value in parts.items())


class PlanDoesNotFit(ValueError):
    """A plan needs more memory per device, or per node's host, than there is."""


@functools.lru_cache(maxsize=64)
def _parameter_counts(config: M6Config) -> tuple[int, int, int, int]:
    """(full, non-embedding, active in matrix products, experts), counted on the meta device."""
    from m6_pipeline.model.m6 import count_parameters

    full = count_parameters(config)
    d = config.d_model
    embeddings = (config.vocab_size + config.max_positions + config.n_segments) * d
    patch_projection = config.d_patch_feature * d + d
    non_embedding = full - embeddings - patch_projection
    experts = inactive = 0
    if config.moe is not None:
        f, m, k = config.expert_width, config.moe.n_experts, config.moe.top_k
        n_moe = sum(config.moe.is_moe_block(i) for i in range(config.n_layers))
        experts = n_moe * m * (2 * d * f + f + d)
        inactive = n_moe * (m - k) * (2 * d * f + f + d)
    return full, non_embedding, non_embedding - inactive + config.vocab_size * d, experts


def _state_bytes_per_param(settings: PlanSettings) -> tuple[float, float, float, float]:
    """(weights, gradients, optimizer states, DDP buckets) bytes per parameter, unsharded."""
    ddp_buckets = 4.0 if settings.plugin == "torch_ddp" else 0.0
    if settings.precision == "fp32":
        return 4.0, 4.0, 8.0, ddp_buckets
    if settings.plugin == "torch_ddp":  # autocast: fp32 weights plus their cached bf16 casts
        return 6.0, 4.0, 8.0, ddp_buckets
    return 2.0, 2.0, 12.0, 0.0


def output_layer_bytes(tokens: int, vocab: int, d_model: int, *, on_cpu: bool) -> float:
    """Peak bytes of the fused output layer + cross entropy for `tokens` scored positions: one
    chunk's fp32 logits and bf16 gradient, the hidden states' gradient, the weight's fp32
    gradient (see the module docstring)."""
    rows = min(tokens, chunk_rows(vocab, "cpu" if on_cpu else "cuda"))
    return 6 * rows * vocab + 2 * tokens * d_model + 4 * vocab * d_model


def plan(config: M6Config, cluster: ClusterSpec, settings: PlanSettings) -> Plan:
    """Per-device memory and cluster throughput of training `config` on `cluster`."""
    s, b, h, a = settings.seq_len, settings.micro_batch_size, config.d_model, config.n_heads
    t, n_layers = settings.tp_size, config.n_layers
    if s > config.max_positions:
        raise ValueError(
            f"seq_len={s} exceeds the model's max_positions={config.max_positions}; "
            "shorten the sequences or raise max_positions"
        )
    if a % t:
        raise ValueError(f"tp_size={t} must divide n_heads={a}")
    n_devices = cluster.n_devices
    if n_devices % (t * settings.pp_size):
        raise ValueError(f"{n_devices} devices do not split into tp_size={t} groups")
    if cluster.on_cpu and settings.plugin != "torch_ddp":
        raise ValueError(
            f"plugin {settings.plugin!r} needs CUDA GPUs; plan CPU workers with torch_ddp"
        )
    dp = n_devices // (t * settings.pp_size)
    full, non_embedding, matmul, experts = _parameter_counts(config)
    ep = settings.ep_size
    if n_devices % ep or (config.moe is not None and config.moe.n_experts % ep):
        raise ValueError(f"ep_size={ep} must divide the {n_devices} devices and the experts")
    if ep > 1 and config.moe is None:
        raise ValueError(f"ep_size={ep} needs an MoE model (model.moe)")
    expert_dp = n_devices // ep

    weight, grad, optim, buckets = _state_bytes_per_param(settings)
    # replicated over the data-parallel ranks; TP shards the blocks, not the embeddings
    per_rank = (non_embedding - experts) / t + (full - non_embedding)
    experts_per_rank = experts / ep  # each rank holds 1/ep of the experts
    stage = settings.zero_stage or 0

    def sharded(bytes_per_param: float, from_stage: int) -> float:
        dense = per_rank * bytes_per_param / (dp if stage >= from_stage else 1)
        return dense + experts_per_rank * bytes_per_param / (expert_dp if stage >= from_stage else 1)

    parameters = sharded(weight, 3)
    gradients = sharded(grad, 2)
    optimizer_states = sharded(optim, 1) * (1 - settings.offload_optim_frac)
    offloaded = sharded(optim, 1) * settings.offload_optim_frac
    communication = (per_rank + experts_per_rank) * buckets
    layer_params = (non_embedding - experts - 2 * h) / n_layers  # final norm is not a layer
    gathered = 2 * layer_params / t * weight if stage >= 3 else 0.0

    act_scale = 1.0 if settings.precision == "bf16" else 2.0
    per_layer = act_scale * s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    if config.moe is not None:  # dispatched tokens around the experts and the all-to-all
        n_moe = sum(config.moe.is_moe_block(i) for i in range(n_layers))
        moe_extra = act_scale * config.moe.top_k * config.moe.capacity_factor * s * b * h * (
            4 + 2 * config.expert_width / h
        )
        per_layer += moe_extra * n_moe / n_layers
    no_ckpt = n_layers * per_layer
    ckpt = act_scale * 2 * s * b * h * (n_layers - 1) + per_layer
    activations = ckpt if settings.activation_checkpointing else no_ckpt
    output_layer = output_layer_bytes(s * b, config.vocab_size, h, on_cpu=cluster.on_cpu)

    allocated = (
        parameters
        + gradients
        + optimizer_states
        + communication
        + gathered
        + activations
        + output_layer
    )
    allowance = settings.fragmentation * allocated + settings.runtime_reserved_gib * GIB
    total = allocated + allowance
    capacity = cluster.device_memory_bytes

    model_flops = 6 * matmul + 12 * n_layers * h * s
    hardware_flops = model_flops + (
        (2 * matmul + 4 * n_layers * h * s) if settings.activation_checkpointing else 0
    )
    peak = cluster.peak_flops(settings.precision)
    mfu_planned = settings.mfu * model_flops / hardware_flops
    tokens_per_s = n_devices * peak * mfu_planned / model_flops
    global_batch = b * dp
    host = None if cluster.on_cpu else _plan_host(
        config, cluster, settings, offloaded, built=full - experts + experts_per_rank,
        kept=per_rank + experts_per_rank, n_params_full=full, n_expert_params=experts,
    )
    return Plan(
        config=config,
        cluster=cluster,
        settings=settings,
        n_params_full=full,
        n_params_non_embedding=non_embedding,
        n_params_matmul=matmul,
        n_params_experts=experts,
        expert_parallel_size=ep,
        n_layers=n_layers,
        d_model=h,
        n_heads=a,
        vocab_size=config.vocab_size,
        n_devices=n_devices,
        data_parallel_size=dp,
        device_kind="cpu" if cluster.on_cpu else "gpu",
        parameters_bytes=parameters,
        gradients_bytes=gradients,
        optimizer_states_bytes=optimizer_states,
        communication_buffers_bytes=communication,
        gathered_parameters_bytes=gathered,
        activations_per_layer_bytes=per_layer,
        activations_bytes=activations,
        activations_no_checkpointing_bytes=no_ckpt,
        activations_checkpointing_bytes=ckpt,
        output_layer_bytes=output_layer,
        allocated_bytes=allocated,
        allowance_bytes=allowance,
        total_bytes=total,
        capacity_bytes=capacity,
        fits=total <= capacity and (host is None or host.fits),
        shortfall_bytes=max(0.0, total - capacity),
        host=host,
        model_flops_per_token=model_flops,
        hardware_flops_per_token=hardware_flops,
        peak_flops_per_device=peak,
        mfu_planned=mfu_planned,
        tokens_per_step=global_batch * s,
        global_batch_size=global_batch,
        tokens_per_s=tokens_per_s,
        samples_per_s=tokens_per_s / s,
        step_time_s=global_batch * s / tokens_per_s,
    )


def _plan_host(
    config: M6Config, cluster: ClusterSpec, settings: PlanSettings, offloaded: float, *,
    built: float, kept: float, n_params_full: int, n_expert_params: int,
) -> HostMemory:
    """Rank 0's node: `built` parameters made by an eager build, `kept` after sharding, and
    `offloaded` optimizer bytes per worker. The final export (model/sharded_weights.py) writes
    the dense weights once from rank 0 and each expert shard from the rank holding it: the
    node stages the dense part and the experts of its workers' expert-parallel ranks."""
    ep = settings.ep_size
    build = host_memory.model_build_bytes_per_worker(
        config, plugin=settings.plugin, lazy=bool(settings.lazy_init), precision=settings.precision,
        built_params=built, rank_params=kept, ep_size=ep,
    )
    data = host_memory.data_loading_bytes_per_worker(
        config, micro_batch=settings.micro_batch_size, seq_len=settings.seq_len,
        reader_gib=settings.host_data_loading_gib,
    )
    # the final safetensors file holds the weights as trained: bf16 under ZeRO, fp32 under DDP
    final_bytes_per_param = 2 if settings.precision == "bf16" and settings.plugin != "torch_ddp" else 4
    return host_memory.plan_host_memory(
        workers_per_node=cluster.workers_per_node, lazy=bool(settings.lazy_init),
        build_bytes_per_worker=build, offload_bytes_per_worker=offloaded,
        data_bytes_per_worker=data, checkpoint_shard_gib=settings.checkpoint_shard_gib,
        final_weights_bytes=final_bytes_per_param * (
            n_params_full - n_expert_params
            + n_expert_params * min(cluster.workers_per_node, ep) / ep
        ),
        runtime_gib_per_worker=settings.host_runtime_gib, capacity_gib=cluster.host_memory_gib,
    )


def _host_alternatives(p: Plan) -> list[str]:
    """Changes that would make one node's host memory fit, each re-planned."""
    ideas: list[str] = []
    config, settings, cluster = p.config, p.settings, p.cluster

    def describe(change: str, new: Plan) -> str:
        verdict = "fits" if new.fits else "still short"
        return (f"{change}: {new.host.total_gib:.1f} GiB per node, "
                f"{new.total_gib:.1f} GiB per GPU ({verdict})")

    if not settings.lazy_init:
        lazy = settings.model_copy(update={"lazy_init": True})
        change = "lazy initialisation (lazy_init: true; each worker materialises only its part)"
        if settings.plugin not in SHARDING_PLUGINS:
            lazy = settings.model_copy(
                update={"plugin": "gemini", "zero_stage": 3, "tp_size": 1, "lazy_init": True}
            )
            change = "lazy initialisation under plugin 'gemini' (ZeRO-3: torch_ddp replicates the model)"
        ideas.append(describe(change, plan(config, cluster, lazy)))
    if settings.offload_optim_frac > 0:
        on_gpu = settings.model_copy(update={"offload_optim_frac": 0.0})
        ideas.append(describe("optimizer states on the GPUs (offload_optim_frac: 0)",
                              plan(config, cluster, on_gpu)))
    needed = -(-p.host.total_bytes // (64 * GIB)) * 64
    ideas.append(f"nodes with more host memory: host_memory_gib {needed:.0f} or more")
    return ideas


def _alternatives(p: Plan) -> list[str]:
    """Changes that would make the plan fit, each re-planned: what it needs, and whether it fits."""
    ideas: list[str] = []
    config, settings, cluster = p.config, p.settings, p.cluster

    def describe(change: str, new: Plan) -> str:
        verdict = "fits" if new.fits else "still short"
        return f"{change}: {new.total_gib:.1f} GiB per device ({verdict})"

    if config.moe is not None and settings.ep_size < cluster.n_devices:
        spread = settings.model_copy(update={"plugin": "moe_hybrid_parallel", "ep_size": cluster.n_devices,
                                             "lazy_init": True,
                                             "zero_stage": max(1, settings.zero_stage or 0)})
        if not cluster.on_cpu and config.moe.n_experts % cluster.n_devices == 0:
            ideas.append(describe(
                f"shard the experts over all {cluster.n_devices} GPUs (plugin 'moe_hybrid_parallel', "
                f"ep_size {cluster.n_devices})", plan(config, cluster, spread)))
    if not cluster.on_cpu and (settings.zero_stage or 0) < 3 and config.moe is None:
        sharded = settings.model_copy(update={"plugin": "gemini", "zero_stage": 3, "tp_size": 1, "lazy_init": True})
        ideas.append(
            describe(
                "shard weights, gradients and optimizer states with plugin 'gemini' (ZeRO-3)",
                plan(config, cluster, sharded),
            )
        )
        if (settings.zero_stage or 0) < 2:
            zero2 = settings.model_copy(
                update={"plugin": "low_level_zero", "zero_stage": 2, "tp_size": 1, "lazy_init": True}
            )
            ideas.append(
                describe(
                    "or plugin 'low_level_zero' with zero_stage 2", plan(config, cluster, zero2)
                )
            )
    if not cluster.on_cpu:
        sharded_settings = (
            settings
            if (settings.zero_stage or 0) >= 3
            else settings.model_copy(update={"plugin": "gemini", "zero_stage": 3, "tp_size": 1, "lazy_init": True})
        )
        n = cluster.n_gpus
        while n < 65536:
            n *= 2
            bigger = plan(config, cluster.model_copy(update={"n_gpus": n}), sharded_settings)
            if bigger.fits:
                ideas.append(
                    describe(
                        f"more GPUs: {n} under ZeRO-3 (replicated states do not shrink with more GPUs)",
                        bigger,
                    )
                )
                break
    else:
        if cluster.n_workers > 1:
            fewer = cluster.model_copy(update={"n_workers": 1})
            ideas.append(
                describe(
                    "fewer CPU workers (each holds a full replica): 1 worker",
                    plan(config, fewer, settings),
                )
            )
        ideas.append("a host with more memory (host_memory_gib)")
    if not settings.activation_checkpointing:
        ckpt = settings.model_copy(update={"activation_checkpointing": True})
        ideas.append(describe("activation checkpointing", plan(config, cluster, ckpt)))
    if settings.micro_batch_size > 1:
        small = settings.model_copy(update={"micro_batch_size": 1})
        ideas.append(
            describe("smaller micro-batch: micro_batch_size 1", plan(config, cluster, small))
        )
    return ideas


def check_fits(p: Plan) -> Plan:
    """Return the plan when it fits; else raise `PlanDoesNotFit` naming the shortfall in GiB and
    the changes that would fit, each re-planned."""
    if p.fits:
        return p
    problems = []
    if p.host is not None and not p.host.fits:
        h = p.host
        problems.append(
            f"M6 with {p.n_params_full / 1e9:.2f}B parameters needs {h.total_gib:.1f} GiB of host "
            f"memory per node ({h.workers_per_node} GPU workers, model built {h.model_build}) but a "
            f"node has {h.capacity_bytes / GIB:.1f} GiB: short by {h.shortfall_bytes / GIB:.1f} GiB "
            f"[{h.breakdown()} GiB]. To fit, try: " + "; ".join(_host_alternatives(p)) + "."
        )
    if p.device_fits:
        raise PlanDoesNotFit(" ".join(problems))
    device = "CPU worker" if p.device_kind == "cpu" else "GPU"
    message = (
        f"M6 with {p.n_params_full / 1e9:.2f}B parameters needs {p.total_gib:.1f} GiB per {device} "
        f"under {p.settings.plugin} (ZeRO stage {p.settings.zero_stage}, micro-batch "
        f"{p.settings.micro_batch_size} x {p.settings.seq_len}) but a {device} has "
        f"{p.capacity_bytes / GIB:.1f} GiB: short by {p.shortfall_bytes / GIB:.1f} GiB "
        f"[{p.breakdown()} GiB]."
    )
    message += " To fit, try: " + "; ".join(_alternatives(p)) + "."
    raise PlanDoesNotFit(" ".join([message, *problems]))
