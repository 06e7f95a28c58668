"""Typed configuration of the VQGAN stage (`parameters_vqgan.yml`): the autoencoder and its
codebook, the losses of taming-transformers, and training."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.loop_precision import LoopPrecision
from m6_pipeline.torch_threads import intra_op_threads


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VQGANConfig(_Frozen):
    """Convolutional encoder/decoder with residual blocks (taming-transformers' cut) around a
    vector quantiser. The code grid is resolution / 2**(len(channel_mult) - 1)."""

    resolution: int = Field(256, ge=8, description="square input/output images, pixels")
    channels: int = Field(128, ge=8, description="width of the first resolution level")
    channel_mult: tuple[int, ...] = Field((1, 1, 2, 2, 4), description="width per level")
    n_res_blocks: int = Field(2, ge=1, description="residual blocks per level")
    attention: bool = Field(True, description="self-attention blocks at the code grid")
    d_latent: int = Field(256, ge=1, description="channels of the quantised latent")
    codebook_size: int = Field(1024, ge=2)
    codebook_dim: int | None = Field(
        None, description="look codes up in a lower-dimensional projection (None: d_latent)"
    )
    ema_decay: float = Field(0.99, gt=0, lt=1, description="EMA codebook update decay")
    commitment_weight: float = Field(0.25, ge=0)
    kmeans_init: bool = Field(True, description="initialise the codebook by k-means on a batch")
    dead_code_threshold: float = Field(
        2.0, ge=0, description="restart codes whose EMA usage falls below this (0: never)"
    )

    @model_validator(mode="after")
    def _grid_divides(self) -> VQGANConfig:
        factor = 2 ** (len(self.channel_mult) - 1)
        if self.resolution % factor:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by the downsampling factor "
                f"{factor} of channel_mult={self.channel_mult}"
            )
        return self

    @property
    def grid(self) -> int:
        """Codes per image side."""
        return self.resolution // 2 ** (len(self.channel_mult) - 1)

    @property
    def n_codes(self) -> int:
        """Codes per image (grid²): the length of an image's code sequence."""
        return self.grid**2


class LossConfig(_Frozen):
    """Reconstruction + perceptual + PatchGAN hinge losses (Esser et al. 2021)."""

    perceptual_weight: float = Field(1.0, ge=0)
    perceptual_weights: Path | None = Field(
        None,
        description="a torchvision VGG16 ImageNet state dict (.pth/.safetensors) for the LPIPS-"
        "style distance; None: a fixed random VGG-style trunk (documented substitute)",
    )
    foreground_weight: float = Field(
        0.0, ge=0, description="extra weight on the L1 of pixels that are not near-white background: "
        "a product on white fills a small share of its image, so a plain mean L1 barely sees "
        "its colour shift"
    )
    disc_start: int = Field(10000, ge=0, description="step at which the discriminator joins")
    disc_weight: float = Field(0.8, ge=0, description="scale on the adaptive adversarial weight")
    disc_layers: int = Field(3, ge=1, description="PatchGAN strided layers")
    disc_channels: int = Field(64, ge=8)


class VQGANTraining(_Frozen):
    steps: int = Field(20000, ge=1)
    batch_size: int = Field(12, ge=1)
    lr: float = Field(4.5e-6 * 12, gt=0, description="taming: 4.5e-6 per image in the batch")
    betas: tuple[float, float] = (0.5, 0.9)
    max_train_images: int = Field(50000, ge=1, description="training images held in memory")
    holdout_fraction: float = Field(0.05, gt=0, lt=0.5, description="images (by id) held out")
    max_holdout_images: int = Field(256, ge=1)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(1000, ge=1, description="resumable state; 0 steps lost at most this")
    precision: LoopPrecision = Field(
        "fp32", description="of the encoder, decoder and discriminator (the codebook and the losses "
        "stay fp32); auto: measured on this machine once per stage (vqgan.train.resolve_precision)"
    )
    seed: int = 0


class VQGANJob(_Frozen):
    pairs_dir: Path = Field(Path("data/03_primary/pairs"), description="clean pairs Parquet")
    codes_dir: Path = Field(Path("data/04_feature/image_codes"), description="codes Parquet")
    checkpoint_dir: Path = Field(Path("data/checkpoints/vqgan"))
    curves_dir: Path | None = Field(None, description="dvclive training curves (None: not logged)")
    model_dir: Path = Field(Path("data/06_models/vqgan/model"), description="the trained model")
    model: VQGANConfig = VQGANConfig()
    loss: LossConfig = LossConfig()
    training: VQGANTraining = VQGANTraining()
    encode_batch_size: int = Field(256, ge=1)
    rows_per_file: int = Field(8192, ge=1)
    torch_threads: int | None = Field(None, ge=1, description="intra-op threads (None: default)")
    precision_choice: dict | None = Field(
        None, description="set when the stage starts: how training.precision was resolved "
        "(PrecisionChoice.record()), for the stage's reports"
    )

    def threads(self):
        """Run a block with `torch_threads` intra-op threads, then restore the setting."""
        return intra_op_threads(self.torch_threads)
