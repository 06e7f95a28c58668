"""Where the demos find the exported models (the paths the pipelines write by default), how
uploads are checked and how the demos sample. Relative paths are relative to the repository
root, where the app runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from m6_pipeline.loop_precision import LoopPrecision
from m6_pipeline.tasks.qa.config import PromptSampling
from m6_pipeline.tasks.t2i.config import T2ISampling


class UploadLimits(BaseModel):
    """What an uploaded image may be; checked before any pixel is decoded."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_bytes: int = Field(10_000_000, ge=1, description="file size cap, bytes")
    max_pixels: int = Field(25_000_000, ge=1, description="a declared width x height above is a bomb")
    min_pixels: int = Field(1024, ge=1, description="smaller images carry too little to describe")


class DemoConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tokenizer: Path = Path("data/04_feature/tokenizer/tokenizer.json")
    patch_extractor: Path = Path("data/06_models/features/patch_extractor.pkl")
    pretrained: Path = Path("data/06_models/pretrain_base")
    caption: Path = Path("data/06_models/finetune_caption/pretrained")
    vqa: Path = Path("data/06_models/finetune_vqa/pretrained")
    t2i: Path = Path("data/06_models/finetune_t2i/model")
    vqgan: Path = Path("data/06_models/vqgan/model")
    upload: UploadLimits = UploadLimits()
    catalogue_images: int = Field(8, ge=1, description="catalogue images offered to the image demos")
    max_images: int = Field(8, ge=1, description="most images one text-to-image request makes")
    qa_max_new_tokens: int = Field(100, ge=1)
    qa_sampling: PromptSampling = PromptSampling(top_p=0.9)
    poem_sampling: PromptSampling = PromptSampling(top_k=20, temperature=0.9)
    t2i_sampling: T2ISampling = Field(
        T2ISampling(top_k=64), description="samples_per_prompt: the user's image count; no rerank"
    )
    public: bool = Field(
        False, description="the demos without sign-in: anyone who reaches the server may run the models "
        "(CPU time annotators share) and browse catalogue images; default: signed-in users only"
    )
    precision: LoopPrecision = Field(
        "fp32", description="of the demos' generation; auto: measured on this machine when a model "
        "is loaded (m6_pipeline.tasks.precision.resolve_generation_precision)"
    )

    def resolved(self, root: Path) -> DemoConfig:
        """This configuration with relative paths made absolute against `root`."""
        paths = {name: root / value for name, value in self if isinstance(value, Path)}
        return self.model_copy(update=paths)

