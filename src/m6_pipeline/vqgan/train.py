"""Training the VQGAN: one generator step (reconstruction + perceptual + commitment, plus the
adaptively weighted hinge GAN term once the discriminator has started) and one discriminator
step per batch. The batch of a step is a function of (seed, step) and the RNG state is saved
with each checkpoint, so a resumed run continues the uninterrupted one exactly."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)
from tqdm.auto import tqdm

from m6_pipeline.training.local_state import load_state, save_state
from m6_pipeline.vqgan.codebook import CodebookMeter
from m6_pipeline.vqgan.config import VQGANJob
from m6_pipeline.vqgan.discriminator import (
    PatchDiscriminator,
    adaptive_weight,
    hinge_discriminator_loss,
)
from m6_pipeline.vqgan.images import to_model_range
from m6_pipeline.vqgan.model import VQGAN
from m6_pipeline.vqgan.perceptual import PerceptualLoss

log = logging.getLogger(__name__)
CHECKPOINT = "vqgan_state.pt"


class VQGANTrainer:
    def __init__(self, job: VQGANJob):
        self.job, self.cfg = job, job.training
        torch.manual_seed(self.cfg.seed)
        self.model = VQGAN(job.model)
        self.discriminator = PatchDiscriminator(job.loss.disc_layers, job.loss.disc_channels)
        self.perceptual = PerceptualLoss(job.loss.perceptual_weights, seed=self.cfg.seed)
        adam = {"lr": self.cfg.lr, "betas": self.cfg.betas}
        self.opt_g = torch.optim.Adam(self.model.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), **adam)
        self.step, self.history = 0, []

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        save_state(directory / CHECKPOINT, {
            "step": self.step,
            "history": self.history,
            "model": self.model.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "config": self._identity(),
        })

    def _identity(self) -> dict:
        """What a checkpoint must match to be resumed (training length may change)."""
        return self.job.model_dump(mode="json", include={"model", "loss"})

    def resume(self, directory: Path) -> bool:
        state = load_state(directory / CHECKPOINT, self._identity())
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step, self.history = state["step"], state["history"]
        log.info("vqgan: resumed from step %d (%s)", self.step, directory)
        return True

    # -- one step ------------------------------------------------------------------------------
    def _batch(self, train: np.ndarray) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        index = torch.randint(0, len(train), (self.cfg.batch_size,), generator=generator)
        return to_model_range(train[index.numpy()])

    def train_step(self, x: torch.Tensor, meter: CodebookMeter) -> dict[str, float]:
        loss_cfg = self.job.loss
        reconstruction, codes, commitment = self.model(x)
        rec = (x - reconstruction).abs().mean()
        perceptual = self.perceptual(x, reconstruction).mean()
        nll = rec + loss_cfg.perceptual_weight * perceptual
        gan_active = self.step >= loss_cfg.disc_start
        g_loss = torch.zeros(())
        weight = torch.zeros(())
        if gan_active:
            g_loss = -self.discriminator(reconstruction).mean()
            weight = adaptive_weight(nll, g_loss, self.model.last_layer) * loss_cfg.disc_weight
        loss = nll + weight * g_loss + commitment
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()

        d_loss = torch.zeros(())
        if gan_active:
            d_loss = hinge_discriminator_loss(
                self.discriminator(x), self.discriminator(reconstruction.detach())
            )
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        meter.update(codes, self.model.pop_restarts())
        parts = {"reconstruction_l1": rec, "perceptual": perceptual, "commitment": commitment,
                 "generator_gan": g_loss, "discriminator": d_loss, "adaptive_weight": weight}
        return {name: float(value.detach()) for name, value in parts.items()}

    def fit(self, train: np.ndarray, checkpoint_dir: Path | None = None) -> list[dict]:
        """Train to `training.steps`, resuming from `checkpoint_dir` when it holds a state."""
        if checkpoint_dir is not None:
            self.resume(checkpoint_dir)
        self.model.train()
        self.discriminator.train()
        meter = CodebookMeter(self.job.model.codebook_size)
        sums: dict[str, float] = {}
        started, n = time.perf_counter(), 0
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="vqgan", mininterval=5)
        while self.step < self.cfg.steps:
            losses = self.train_step(self._batch(train), meter)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + value
            self.step += 1
            n += 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                row = {"step": self.step, **{k: v / n for k, v in sums.items()}, **meter.summary()}
                row["images_per_s"] = n * self.cfg.batch_size / (time.perf_counter() - started)
                self.history.append(row)
                bar.set_postfix(l1=f"{row['reconstruction_l1']:.3f}", usage=f"{row['codebook_usage']:.2f}")
                sums, started, n = {}, time.perf_counter(), 0
            if checkpoint_dir is not None and self.step % self.cfg.checkpoint_every == 0:
                self.save(checkpoint_dir)
        bar.close()
        self.model.eval()
        return self.history


@torch.no_grad()
def reconstruction_quality(model: VQGAN, images: np.ndarray, batch_size: int = 64) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM of reconstructions of uint8 images [n, r, r, 3], pixels in [0, 1]."""
    model.eval()
    psnr, ssim = [], []
    for start in range(0, len(images), batch_size):
        x = to_model_range(images[start : start + batch_size])
        y = model.decode_codes(model.encode(x))
        x01, y01 = (x + 1) / 2, (y + 1) / 2
        psnr.append(peak_signal_noise_ratio(y01, x01, data_range=1.0, reduction="none", dim=(1, 2, 3)))
        ssim.append(structural_similarity_index_measure(y01, x01, data_range=1.0, reduction="none"))
    return {
        "psnr_db": float(torch.cat(psnr).mean()),
        "ssim": float(torch.cat(ssim).mean()),
        "n_images": len(images),
    }
