"""Typed configuration of the `finetune_t2i` pipeline (`parameters_finetune_t2i.yml`)."""

from __future__ import annotations

from pathlib import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from m6_pipeline.tasks.finetune.config import FinetuneTraining
from m6_pipeline.torch_threads import intra_op_threads


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class T2IData(_Frozen):
    max_prompt_tokens: int = Field(32, ge=1, description="text tokens before the codes")
    held_out_fraction: float = Field(0.05, gt=0, lt=0.5, description="pairs (by id) for evaluation")
    held_out_combinations: list[dict[str, str]] = Field(
        default_factory=lambda: [{"category": "高跟鞋", "pattern": "迷彩"}],
        description="attribute combinations kept out of training (the paper's camouflage heels)",
    )
    prompt_dropout: float = Field(
        0.1, ge=0, lt=1, description="share of training prompts emptied: the unconditional "
        "model that classifier-free guidance and the reranker need",
    )

    @property
    def target_start(self) -> int:
        """Position of [BOS]: after the longest prompt and its [SEP], so that code t always sits
        at position target_start + 1 + t whatever the prompt's length (DALL-E likewise gives
        image tokens positions of their own)."""
        return self.max_prompt_tokens + 1


class T2ITraining(FinetuneTraining):
    """The downstream finetuning settings, with text-to-image's longer defaults."""

    steps: int = Field(3000, ge=1)
    warmup_steps: int = Field(100, ge=0)
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(500, ge=1)
    checkpoint_every: int = Field(500, ge=1)


class T2ISampling(_Frozen):
    """Top-k (and top-p) sampling of the codes with the KV cache (§4.1); guidance and
    reranking are beyond the paper."""

    top_k: int = Field(64, ge=0, description="0: no top-k cut")
    top_p: float = Field(1.0, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)
    samples_per_prompt: int = Field(4, ge=1)
    guidance_scale: float = Field(
        1.0, ge=0, description="classifier-free guidance: logits u + s (c - u); 1.0 = off"
    )
    rerank: bool = Field(
        False, description="keep the sample with the highest text-image pointwise mutual "
        "information, log p(codes|text) - log p(codes), of samples_per_prompt",
    )


class T2IEvaluation(_Frozen):
    n_prompts: int = Field(120, ge=1, description="held-out prompts whose images are generated")
    n_human_eval: int = Field(
        50, ge=0, description="of those, the first prompts whose paper_top_k image (first sample) "
        "goes to t2i_predictions / t2i_images for the human evaluation; capped at n_prompts",
    )
    classifier_epochs: int = Field(8, ge=1)
    classifier_width: int = Field(32, ge=8)
    figure_prompts: list[str] = Field(
        default_factory=lambda: [
            "这款红色连衣裙采用条纹设计，中号尺寸。",
            "这款蓝色背包采用格子设计，大号尺寸。",
            "这款黄色雨伞采用圆点设计，中号尺寸。",
            "这款绿色T恤采用纯色设计，小号尺寸。",
            "这款迷彩高跟鞋，黑色，中号尺寸。",
            "这款粉色高跟鞋采用迷彩设计，中号尺寸。",
        ],
        description="Chinese prompts of the figure grid (Figures 4-7 in spirit)",
    )
    inception_weights: Path | None = Field(
        None, description="StyleGAN2-ADA's TorchScript inception-2015-12-05.pt for FID; None: no FID"
    )


class T2IJob(_Frozen):
    pretrained_dir: Path | str | None = Field(
        None, description="the pretrained M6, a path or URI (None: the pretraining card's); a local copy once the stage starts"
    )
    out_dir: Path = Field(Path("data/06_models/finetune_t2i/model"))
    checkpoint_dir: Path = Field(Path("data/checkpoints/finetune_t2i"))
    curves_dir: Path | None = Field(None, description="dvclive training curves (None: not logged)")
    data: T2IData = T2IData()
    training: T2ITraining = T2ITraining()
    sampling: T2ISampling = T2ISampling()
    variants: dict[str, T2ISampling] = Field(
        default_factory=dict, description="further decoding settings compared in the report; an "
        "environment turns one of conf/base's off by setting it to null"
    )
    evaluation: T2IEvaluation = T2IEvaluation()
    torch_threads: int | None = Field(None, ge=1)
    precision_choice: dict | None = Field(
        None, description="set when the stage starts: how training.precision, which the stage's "
        "generation uses too, was resolved (PrecisionChoice.record()), for the stage's reports"
    )

    @field_validator("variants", mode="before")
    @classmethod
    def _drop_switched_off(cls, variants):
        """`name: null` in an environment's parameters removes a variant conf/base names
        (Kedro's soft merge cannot delete a key)."""
        return {k: v for k, v in variants.items() if v is not None} if isinstance(variants, dict) else variants

    @model_validator(mode="after")
    def _rerank_needs_samples(self) -> T2IJob:
        for name, sampling in {"sampling": self.sampling, **self.variants}.items():
            if sampling.rerank and sampling.samples_per_prompt < 2:
                raise ValueError(f"{name}: rerank needs samples_per_prompt >= 2")
        return self

    def threads(self):
        """Run a block with `torch_threads` intra-op threads, then restore the setting."""
        return intra_op_threads(self.torch_threads)
