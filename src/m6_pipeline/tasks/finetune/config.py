"""Typed configuration shared by the finetuning pipelines (`parameters_finetune_*.yml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from m6_pipeline.loop_precision import LoopPrecision
from m6_pipeline.torch_threads import intra_op_threads

# pretrained: the pretrained M6 finetuned; baseline: the same architecture from its
# initialisation (the paper's comparison). Every task runs both unless its `variants` leaves the
# baseline out.
Variant = Literal["pretrained", "baseline"]
VARIANTS: tuple[Variant, ...] = ("pretrained", "baseline")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskSplits(_Frozen):
    """How a task's products are split (m6_pipeline.tasks.records.split_of)."""

    val_fraction: float = Field(0.05, gt=0, lt=0.5, description="products (by id) for validation")
    test_fraction: float = Field(
        0.1, gt=0, lt=0.5, description="products (by id) for the test; the pretrained card's "
        "downstream_test_fraction replaces it"
    )


class FinetuneTraining(_Frozen):
    steps: int = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-4, gt=0)
    baseline_lr: float | None = Field(
        None, gt=0, description="learning rate of the from-scratch baseline; None: lr"
    )
    warmup_steps: int = Field(40, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    precision: LoopPrecision = Field(
        "bf16", description="auto: measured on this machine once per stage (m6_pipeline.tasks.precision)"
    )
    log_every: int = Field(25, ge=1)
    eval_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    seed: int = 0

    def lr_of(self, variant: Variant) -> float:
        return self.baseline_lr if variant == "baseline" and self.baseline_lr else self.lr


class Decoding(_Frozen):
    max_new_tokens: int = Field(16, ge=1)
    batch_size: int = Field(64, ge=1)


class FinetuneJob(_Frozen):
    """What every task job has: where the models come from and go, training, decoding."""

    task: str
    pretrained_dir: Path | str | None = Field(
        None, description="the pretrained M6, a path or URI (None: the pretraining card's); a local copy once the stage starts"
    )
    out_dir: Path = Field(description="finetuned models: out_dir/<variant>/")
    curves_dir: Path | None = Field(
        None, description="dvclive training curves: curves_dir/<variant>/ (None: not logged)"
    )
    checkpoints: Path | None = Field(
        None, description="resumable training state: checkpoints/<variant>/ (conf/base keeps it out of "
        "the exported models DVC versions, under data/checkpoints/); None: out_dir/checkpoints"
    )
    training: FinetuneTraining = FinetuneTraining()
    decoding: Decoding = Decoding()
    variants: tuple[Variant, ...] = Field(
        VARIANTS, description="the variants finetuned and scored; leaving out `baseline` saves its "
        "training where only the pretrained model's figure is wanted (the report says it was not run)"
    )
    max_prompt_tokens: int = Field(32, ge=1)
    max_target_tokens: int = Field(16, ge=1)
    torch_threads: int | None = Field(None, ge=1)
    test_unseen_in_pretraining: bool = Field(
        False, description="set from the pretrained card: the test pairs were left out of pretraining"
    )
    precision_choice: dict | None = Field(
        None, description="set when the stage starts: how training.precision was resolved "
        "(PrecisionChoice.record()), for the stage's reports"
    )

    @field_validator("variants")
    @classmethod
    def _pretrained_always(cls, variants: tuple[Variant, ...]) -> tuple[Variant, ...]:
        if "pretrained" not in variants or len(set(variants)) != len(variants):
            raise ValueError(f"variants {list(variants)}: list `pretrained` (the model the task is for), "
                             "optionally `baseline`, each once")
        return variants

    def curves_of(self, variant: Variant) -> Path | None:
        return self.curves_dir / variant if self.curves_dir is not None else None

    def not_run(self, variant: Variant) -> dict | None:
        """None where `variant` is finetuned; else the record its card and training say instead."""
        if variant in self.variants:
            return None
        return {"task": self.task, "variant": variant, "not_run": f"{self.task}: `variants` is {list(self.variants)}"}

    def model_dir(self, variant: Variant) -> Path:
        return self.out_dir / variant

    def checkpoint_dir(self, variant: Variant) -> Path:
        return (self.checkpoints or self.out_dir / "checkpoints") / variant

    def sequence_length(self, n_patches: int) -> int:
        """Positions of the longest example: patches, prompt, [SEP], [BOS], target, [EOS]."""
        return n_patches + self.max_prompt_tokens + 1 + self.max_target_tokens + 2

    def threads(self):
        """Run a block with `torch_threads` intra-op threads, then restore the setting."""
        return intra_op_threads(self.torch_threads)
