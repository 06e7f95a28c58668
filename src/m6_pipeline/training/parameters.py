"""`parameters_pretrain.yml` as typed objects: one block per namespaced pipeline
(`pretrain_base`, `pretrain_10b`, `pretrain_100b`), paper scale in conf/base, scaled down in conf/local."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from m6_pipeline.model.config import M6Config
from m6_pipeline.pretraining.batches import TaskMix
from m6_pipeline.pretraining.shards import ShardConfig
from m6_pipeline.training.config import OptimizerConfig, PluginConfig, PretrainJob, WorkersConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelChoice(_Frozen):
    size: str = Field(description="a Table 4 size: base | 10b | 100b (tiny for tests)")
    overrides: dict[str, int | float | bool | dict[str, int | float | str | None]] = Field(
        default_factory=dict,
        description="M6Config fields that scale the size down (conf/local); `moe` merges into the size's MoE",
    )

    def config(self, *, vocab_size: int, n_patches: int, d_patch_feature: int) -> M6Config:
        """The vocabulary and image inputs come from the trained tokenizer and extractor."""
        return M6Config.of_size(
            self.size,
            **{
                **self.overrides,
                "vocab_size": vocab_size,
                "n_patches": n_patches,
                "d_patch_feature": d_patch_feature,
            },
        )


class PaperScale(_Frozen):
    """The full-size run the plan describes (what conf/base trains on a GPU cluster)."""

    model: ModelChoice
    vocab_size: int = 21128
    n_patches: int = 16
    d_patch_feature: int = 2048


class PretrainParameters(_Frozen):
    name: str
    model: ModelChoice
    paper_scale: PaperScale
    shards: ShardConfig = ShardConfig()
    mix: TaskMix = TaskMix()
    optimizer: OptimizerConfig = OptimizerConfig()
    plugin: PluginConfig = PluginConfig()
    workers: WorkersConfig = WorkersConfig()
    steps: int = 1000
    batch_size: int = 16
    precision: str = "bf16"
    precision_probe_cache: str | None = Field(
        None, description="where `precision: auto` caches its probe (None: the per-user cache)"
    )
    seed: int = 0
    eval_every: int = 100
    val_examples_per_task: int = 256
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    plan: dict = Field(default_factory=dict, description="cluster and settings for the planner")
    text_dir: str = "data/03_primary/text"
    shard_dir: str
    report_dir: str
    model_dir: str
    samples_per_task: int = 4

    def job(self, model: M6Config) -> PretrainJob:
        return PretrainJob(
            name=self.name,
            model=model,
            mix=self.mix,
            optimizer=self.optimizer,
            plugin=self.plugin,
            workers=self.workers,
            steps=self.steps,
            batch_size=self.batch_size,
            precision=self.precision,
            precision_probe_cache=self.precision_probe_cache,
            seed=self.seed,
            eval_every=self.eval_every,
            val_examples_per_task=self.val_examples_per_task,
            checkpoint_every=self.checkpoint_every,
            keep_checkpoints=self.keep_checkpoints,
            log_every=self.log_every,
            shard_dir=self.shard_dir,
            report_dir=self.report_dir,
        )
