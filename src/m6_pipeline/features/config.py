"""Typed configuration of the image-feature stage (`parameters_features.yml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.torch_threads import intra_op_threads

RESNET50_FEATURES = 2048  # width of ResNet-50's pooled features, before fc


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutoencoderTraining(_Frozen):
    """Training of the patch autoencoder on patches of the clean pair images."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(256, ge=1, description="patches per optimiser step")
    lr: float = Field(5e-3, gt=0)
    gradient_loss_weight: float = Field(0.1, ge=0, description="L1 on image gradients, beside MSE")
    width: int = Field(32, ge=4, description="channels of the first conv layer")
    max_train_images: int = Field(4000, ge=1, description="training images kept in memory")
    holdout_fraction: float = Field(0.05, gt=0, lt=0.5, description="images (by id) for PSNR")
    max_holdout_images: int = Field(200, ge=1)
    flat_patch_keep: float = Field(
        0.1,
        ge=0,
        le=1,
        description="share of near-uniform (background) training patches kept: on "
        "white-background product images they are half the patches and teach little",
    )
    seed: int = 0


class FeaturesConfig(_Frozen):
    """Patch features of §3.1: an image resized to `image_size`², cut into `grid`×`grid` patches
    of `patch_size`² pixels, each embedded into `d_feature` numbers, lined up row-major."""

    pairs_dir: Path = Field(Path("data/03_primary/pairs"), description="clean pairs Parquet")
    out_dir: Path = Field(Path("data/04_feature/patch_features"), description="features Parquet")
    extractor: Literal["patch_autoencoder", "resnet50"] = "patch_autoencoder"
    image_size: int = Field(64, ge=4)
    grid: int = Field(4, ge=1)
    d_feature: int = Field(128, ge=1)
    resnet50_weights: Path | None = Field(
        None, description="torchvision resnet50 ImageNet state dict (.pth or .safetensors)"
    )
    batch_size: int = Field(256, ge=1, description="images per extraction batch")
    rows_per_file: int = Field(8192, ge=1, description="images per output Parquet file")
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op threads while training and extracting; None: "
        "torch's default (1 is faster for these small convs on a shared 2-core machine)",
    )
    autoencoder: AutoencoderTraining = AutoencoderTraining()

    def threads(self):
        """Run a block with `torch_threads` intra-op threads, then restore the setting."""
        return intra_op_threads(self.torch_threads)

    @property
    def patch_size(self) -> int:
        return self.image_size // self.grid

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesConfig:
        if self.image_size % self.grid:
            raise ValueError(
                f"features: image_size {self.image_size} is not a multiple of grid {self.grid}"
            )
        if self.extractor == "resnet50":
            if self.d_feature != RESNET50_FEATURES:
                raise ValueError(
                    f"features: resnet50 gives d_feature {RESNET50_FEATURES}, not {self.d_feature}"
                )
            if self.patch_size < 32:
                raise ValueError(
                    f"features: resnet50 needs patches of >= 32 px (downsamples "
                    f"32x), got {self.patch_size}; raise image_size or lower grid"
                )
        elif self.patch_size % 4:
            raise ValueError(
                f"features: the patch autoencoder halves patches twice; patch "
                f"size {self.patch_size} is not a multiple of 4"
            )
        return self
