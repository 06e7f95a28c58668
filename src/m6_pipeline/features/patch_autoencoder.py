"""The default patch extractor, trained inside the project: a small conv autoencoder whose
encoder maps a patch to `d_feature` numbers, trained to reconstruct the pixels of patches of
the clean pair images (MSE plus a little L1 on image gradients, which keeps edges sharp).
Used where no ImageNet ResNet-50 weights are at hand (this machine cannot download them)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from m6_pipeline.data.parquet_stream import is_held_out, parquet_batches
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.patches import decode_image, split_patches

log = logging.getLogger(__name__)


class PatchAutoencoder(nn.Module):
    """Patches [n, 3, p, p] in [0, 1] <-> codes [n, d_feature] (layer-normalised: zero mean,
    unit variance over the features of each patch); p must be a multiple of 4."""

    def __init__(self, patch_size: int, d_feature: int, width: int = 32):
        super().__init__()
        self.patch_size, self.d_feature, self.width = patch_size, d_feature, width
        inner = (2 * width, patch_size // 4, patch_size // 4)
        flat = math.prod(inner)
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Flatten(),
            nn.Linear(flat, d_feature),
            # unit-scale codes: a stable input for M6's projection, and safe in float16
            nn.LayerNorm(d_feature, elementwise_affine=False),
        )
        self.decoder = nn.Sequential(
            nn.Linear(d_feature, flat),
            nn.GELU(),
            nn.Unflatten(1, inner),
            nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 3, 3, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        return self.encoder(patches * 2 - 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Reconstruction [n, 3, p, p] in [0, 1]."""
        return self.decoder(self.encode(patches))

    @torch.no_grad()
    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches [n, 3, p, p] in [0, 1] -> [n, d_feature]."""
        return self.encode(patches)


def reconstruction_loss(
    recon: torch.Tensor, target: torch.Tensor, gradient_weight: float
) -> torch.Tensor:
    """MSE on pixels plus `gradient_weight` x L1 on horizontal and vertical differences."""
    loss = F.mse_loss(recon, target)
    if gradient_weight:
        for dim in (-1, -2):
            loss = loss + gradient_weight * F.l1_loss(recon.diff(dim=dim), target.diff(dim=dim))
    return loss


@torch.no_grad()
def psnr(model: PatchAutoencoder, patches: torch.Tensor, batch_size: int = 4096) -> float:
    """Reconstruction PSNR in dB over uint8 patches [n, 3, p, p] (pixels scaled to [0, 1])."""
    model.eval()
    squared, count = 0.0, 0
    for start in range(0, len(patches), batch_size):
        target = patches[start : start + batch_size].float() / 255
        squared += F.mse_loss(model(target), target, reduction="sum").item()
        count += target.numel()
    return 10 * math.log10(1 / max(squared / count, 1e-12))


@torch.no_grad()
def mean_colour_error(model: PatchAutoencoder, patches: torch.Tensor) -> float:
    """Mean absolute error (0..255 units) of the reconstructed patch mean colour, per channel,
    over the patches that are not plain background: colour is what catalogue titles state."""
    model.eval()
    patches = patches[(patches.flatten(1).float() / 255).std(dim=1) > 0.02]
    if not len(patches):
        return 0.0
    target = patches.float() / 255
    error = (model(target).mean(dim=(-1, -2)) - target.mean(dim=(-1, -2))).abs().mean()
    return float(error) * 255


def mean_colour_psnr(patches: torch.Tensor) -> float:
    """PSNR of the baseline that paints each patch its mean colour (3 numbers per patch)."""
    target = patches.float() / 255
    mse = F.mse_loss(target.mean(dim=(-1, -2), keepdim=True).expand_as(target), target).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def load_image_patches(
    config: FeaturesConfig, max_train: int | None = None, max_holdout: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 patches [n_images * grid², 3, p, p] of training images (the first `max_train`,
    default `max_train_images`) and of held-out images (ids by stable hash, the first
    `max_holdout`, default `max_holdout_images`), streamed from the pairs Parquet."""
    train_cfg = config.autoencoder
    limits = {
        False: train_cfg.max_train_images if max_train is None else max_train,
        True: train_cfg.max_holdout_images if max_holdout is None else max_holdout,
    }
    images: dict[bool, list[np.ndarray]] = {False: [], True: []}
    for batch in parquet_batches(config.pairs_dir, ["id", "image"], batch_size=256):
        for record_id, png in zip(
            batch.column("id").to_pylist(), batch.column("image").to_pylist(), strict=True
        ):
            held = is_held_out(record_id, train_cfg.holdout_fraction)
            if len(images[held]) < limits[held]:
                images[held].append(decode_image(png, config.image_size, record_id))
        if all(len(images[k]) >= limits[k] for k in limits):
            break
    for held, name in ((False, "training"), (True, "held-out")):
        if limits[held] and not images[held]:
            raise ValueError(f"features: no {name} images under {config.pairs_dir}")

    def as_patches(decoded: list[np.ndarray]) -> torch.Tensor:
        if not decoded:
            p = config.patch_size
            return torch.empty(0, 3, p, p, dtype=torch.uint8)
        pixels = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2)
        return split_patches(pixels, config.grid).flatten(0, 1).contiguous()

    return as_patches(images[False]), as_patches(images[True])


def keep_content_patches(patches: torch.Tensor, flat_keep: float, flat_std: float = 0.02):
    """uint8 patches with pixel std above `flat_std` (of the 0..1 range), plus every
    1/`flat_keep`-th near-uniform one (a deterministic thinning of the background)."""
    flat = (patches.flatten(1).float() / 255).std(dim=1) <= flat_std
    if flat_keep >= 1 or not flat.any():
        return patches
    flat_index = torch.nonzero(flat).flatten()
    step = max(1, round(1 / flat_keep)) if flat_keep > 0 else len(flat_index) + 1
    keep = ~flat
    keep[flat_index[::step]] = True
    return patches[keep]


def train_patch_autoencoder(
    train: torch.Tensor, holdout: torch.Tensor, config: FeaturesConfig
) -> tuple[PatchAutoencoder, dict]:
    """Train on uint8 patches `train` [n, 3, p, p]; report PSNR on `holdout` before and after,
    beside the mean-colour baseline. Deterministic for a given seed and thread count."""
    cfg = config.autoencoder
    n_offered = len(train)
    train = keep_content_patches(train, cfg.flat_patch_keep)
    torch.manual_seed(cfg.seed)
    model = PatchAutoencoder(config.patch_size, config.d_feature, cfg.width)
    generator = torch.Generator().manual_seed(cfg.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    psnr_before = psnr(model, holdout)
    epoch_losses = []
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total, bar = (
            0.0,
            tqdm(
                range(steps_per_epoch),
                desc=f"autoencoder epoch {epoch + 1}",
                leave=False,
                mininterval=2.0,
            ),
        )
        for step in bar:
            target = train[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]].float() / 255
            loss = reconstruction_loss(model(target), target, cfg.gradient_loss_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        epoch_losses.append(total / steps_per_epoch)
        log.info(
            "patch autoencoder epoch %d/%d: loss %.5f (%.0f s)",
            epoch + 1,
            cfg.epochs,
            epoch_losses[-1],
            time.perf_counter() - start,
        )
    seconds = time.perf_counter() - start
    model.eval()
    history = {
        "train_patches": len(train),
        "train_patches_offered": n_offered,
        "holdout_patches": len(holdout),
        "parameters": sum(p.numel() for p in model.parameters()),
        "epoch_loss": epoch_losses,
        "seconds": round(seconds, 1),
        "psnr_db": {
            "before": psnr_before,
            "after": psnr(model, holdout),
            "mean_colour_baseline": mean_colour_psnr(holdout),
        },
        "object_patch_colour_error_255": mean_colour_error(model, holdout),
    }
    log.info(
        "patch autoencoder: held-out PSNR %.1f dB -> %.1f dB (mean-colour baseline %.1f dB)",
        history["psnr_db"]["before"],
        history["psnr_db"]["after"],
        history["psnr_db"]["mean_colour_baseline"],
    )
    return model, history
