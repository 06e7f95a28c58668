"""Typed configuration of a pretraining run: model, optimisation, data, workers, checkpoints.

Kedro parameters (`parameters_pretrain.yml`) validate into `PretrainJob`; the job is handed to
every Ray Train worker as a plain dict and re-validated there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.model.config import M6Config
from m6_pipeline.pretraining.batches import TaskMix


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptimizerConfig(_Frozen):
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 100
    min_lr_ratio: float = Field(0.1, description="cosine decay ends at lr * min_lr_ratio")
    grad_clip: float = Field(1.0, gt=0, description="max gradient norm (L2) before each step")
    expert_clipping: Literal["local", "with_dense"] = Field(
        "local",
        description="local (§3.4): the dense gradients are clipped by their own norm and each "
        "rank's experts by the norm of its own shard (torch_ddp); with_dense: one norm per rank "
        "over its dense gradients and its own experts, what ColossalAI's MoE optimizers do. "
        "Neither computes a norm across all experts",
    )


class PluginConfig(_Frozen):
    """The ColossalAI Booster plugin. torch_ddp runs on CPU (gloo); the others need CUDA."""

    name: Literal["torch_ddp", "low_level_zero", "gemini", "hybrid_parallel", "moe_hybrid_parallel"] = "torch_ddp"
    zero_stage: int = Field(2, description="low_level_zero / hybrid_parallel ZeRO stage")
    tp_size: int = Field(1, description="hybrid_parallel tensor-parallel degree")
    placement_policy: str = Field("static", description="gemini: static | auto")
    ep_size: int = Field(1, ge=1, description="expert-parallel degree of an MoE model (divides the workers)")


class WorkersConfig(_Frozen):
    """Ray Train's worker group: N CPU workers with gloo, or N GPU workers with nccl."""

    num_workers: int = 2
    use_gpu: bool = False
    threads_per_worker: int = Field(1, description="torch intra-op threads of each CPU worker")
    max_failures: int = Field(2, description="worker-group restarts before the run fails")
    storage_path: str = Field(
        "data/checkpoints/ray_train", description="where Ray Train keeps checkpoints (shared on a cluster)"
    )


class PretrainJob(_Frozen):
    name: str = Field(description="run name: also the directory of its checkpoints")
    model: M6Config
    mix: TaskMix = TaskMix()
    optimizer: OptimizerConfig = OptimizerConfig()
    plugin: PluginConfig = PluginConfig()
    workers: WorkersConfig = WorkersConfig()
    steps: int = 1000
    batch_size: int = Field(16, description="examples per worker per step")
    precision: Literal["auto", "bf16", "bf16-master", "fp32"] = Field(
        "bf16",
        description="auto: bf16 where this hardware runs it natively and fast, else fp32 (measured "
        "in the worker, m6_pipeline.precision_choice); bf16: fp32 weights, bf16 autocast; "
        "bf16-master: bf16 weights and math, fp32 master weights in the optimizer (torch_ddp); fp32",
    )
    seed: int = 0
    eval_every: int = 100
    val_examples_per_task: int = 256
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    shard_dir: str = Field(description="token shards: <shard_dir>/{text,pairs}/{train,val}-*.parquet")
    report_dir: str = Field(description="train_summary.json, dvclive metrics and plots go here")
    checkpoint_root: str | None = Field(
        None, description="the run's checkpoint directory (set by the launcher)"
    )
    precision_probe_cache: str | None = Field(
        None, description="where `precision: auto` caches its probe (None: the per-user cache)"
    )
    fail_at_step: int | None = Field(
        None, description="fault injection for tests: one worker exits once at this step"
    )

    @model_validator(mode="after")
    def _experts_fit_the_workers(self) -> PretrainJob:
        ep = self.plugin.ep_size
        if ep > 1 and self.model.moe is None:
            raise ValueError(f"plugin.ep_size={ep} shards experts, but model.moe is not set")
        if self.model.moe is not None:
            if self.workers.num_workers % ep or self.model.moe.n_experts % ep:
                raise ValueError(
                    f"plugin.ep_size={ep} must divide workers.num_workers={self.workers.num_workers} "
                    f"and model.moe.n_experts={self.model.moe.n_experts}"
                )
            if self.precision == "bf16-master":
                raise ValueError("precision bf16-master does not handle sharded experts; use bf16")
            if self.plugin.name not in ("torch_ddp", "moe_hybrid_parallel"):
                raise ValueError(
                    f"an MoE model trains with plugin torch_ddp (CPU/GPU) or moe_hybrid_parallel "
                    f"(GPU), not {self.plugin.name}"
                )
        return self

    @model_validator(mode="after")
    def _master_weights_need_ddp(self) -> PretrainJob:
        if self.precision == "bf16-master" and self.plugin.name != "torch_ddp":
            raise ValueError(
                f"precision bf16-master is for the torch_ddp plugin; {self.plugin.name} keeps its "
                "own fp32 master weights: use precision bf16"
            )
        return self
