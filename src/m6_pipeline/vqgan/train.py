"""Training the VQGAN: one generator step (reconstruction + perceptual + commitment, plus the
adaptively weighted hinge GAN term once the discriminator has started) and one discriminator
step per batch. The batch of a step is a function of (seed, step) and the RNG state is saved
with each checkpoint, so a resumed run continues the uninterrupted one exactly. Under
`training.precision: bf16` the encoder, decoder and discriminator run under bf16 autocast; the
codebook (VQGAN.quantize) and every loss stay fp32."""

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

from m6_pipeline.loop_precision import Probe, autocast, resolve_loop_precision
from m6_pipeline.precision_choice import DEFAULT_CACHE, ProbeShape, probe_linear
from m6_pipeline.tracking import Curves
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


def probe_shape(job: VQGANJob) -> ProbeShape:
    """The VQGAN's convolutions approximated as one matrix product: a 3x3 convolution of the level
    at half the resolution as im2col, [batch * (r/2)², 9 * width] @ [9 * width, width]. The
    levels above and below run the same product at 4x the positions and a narrower width, or the
    reverse; the attention, norms and the discriminator are left out."""
    model = job.model
    width = model.channels * model.channel_mult[min(1, len(model.channel_mult) - 1)]
    tokens = job.training.batch_size * (model.resolution // 2) ** 2
    return ProbeShape(tokens=tokens, d_in=9 * width, d_out=width)


def resolve_precision(
    job: VQGANJob, *, cache_path: Path | None = DEFAULT_CACHE, probe: Probe = probe_linear
) -> VQGANJob:
    """`job` with training.precision resolved on this machine (`auto`: measured at probe_shape
    with the job's threads) and the choice in `precision_choice`; a job that carries a choice
    already is returned as it is."""
    if job.precision_choice is not None:
        return job
    choice = resolve_loop_precision(job.training.precision, probe_shape(job), job.torch_threads,
                                    cache_path=cache_path, probe=probe)
    training = job.training.model_copy(update={"precision": choice.precision})
    return job.model_copy(update={"training": training, "precision_choice": choice.record()})


def weighted_l1(x: torch.Tensor, reconstruction: torch.Tensor, foreground_weight: float) -> torch.Tensor:
    """Mean L1 over images [b, 3, r, r] in [-1, 1], each pixel weighted 1 + `foreground_weight`
    where the real image is not near-white (any channel below 0.9 in [-1, 1], about 242/255),
    normalised by the mean weight so the scale matches the plain L1 (weight 0)."""
    error = (x - reconstruction).abs()
    if foreground_weight == 0:
        return error.mean()
    weight = 1 + foreground_weight * (x < 0.9).any(dim=1, keepdim=True).float()
    return (error * weight).mean() / weight.mean()


class VQGANTrainer:
    def __init__(self, job: VQGANJob, inputs: dict | None = None):
        """`job` is resolved (resolve_precision) if the stage has not done so. inputs: what the
        images were read from (data/file_identity.py); a checkpoint of other inputs is not resumed."""
        job = resolve_precision(job)
        self.job, self.cfg, self.inputs = job, job.training, inputs or {}
        torch.manual_seed(self.cfg.seed)
        self.model = VQGAN(job.model)
        self.discriminator = PatchDiscriminator(job.loss.disc_layers, job.loss.disc_channels)
        self.perceptual = PerceptualLoss(job.loss.perceptual_weights, seed=self.cfg.seed)
        adam = {"lr": self.cfg.lr, "betas": self.cfg.betas, "fused": True}
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
        return {**self.job.model_dump(mode="json", include={"model", "loss"}), "inputs": self.inputs}

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

    def _autocast(self, x: torch.Tensor):
        return autocast(self.cfg.precision, x.device.type)

    def train_step(self, x: torch.Tensor, meter: CodebookMeter) -> dict[str, float]:
        loss_cfg = self.job.loss
        with self._autocast(x):
            reconstruction, codes, commitment = self.model(x)
        reconstruction = reconstruction.float()  # the losses in fp32, whatever the forward ran in
        rec = weighted_l1(x, reconstruction, loss_cfg.foreground_weight)
        perceptual = self.perceptual(x, reconstruction).mean()
        nll = rec + loss_cfg.perceptual_weight * perceptual
        gan_active = self.step >= loss_cfg.disc_start
        g_loss = torch.zeros(())
        weight = torch.zeros(())
        if gan_active:
            with self._autocast(x):
                fake_logits = self.discriminator(reconstruction)
            g_loss = -fake_logits.float().mean()
            weight = adaptive_weight(nll, g_loss, self.model.last_layer) * loss_cfg.disc_weight
        loss = nll + weight * g_loss + commitment
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()

        d_loss = torch.zeros(())
        if gan_active:
            with self._autocast(x):
                real_logits, fake_logits = self.discriminator(x), self.discriminator(reconstruction.detach())
            d_loss = hinge_discriminator_loss(real_logits.float(), fake_logits.float())
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        meter.update(codes, self.model.pop_restarts())
        parts = {"reconstruction_l1": rec, "perceptual": perceptual, "commitment": commitment,
                 "generator_gan": g_loss, "discriminator": d_loss, "adaptive_weight": weight}
        return {name: float(value.detach()) for name, value in parts.items()}

    def fit(self, train: np.ndarray, checkpoint_dir: Path | None = None, curves_dir: Path | None = None) -> list[dict]:
        """Train to `training.steps`, resuming from `checkpoint_dir` when it holds a state; each
        logged row goes to dvclive in `curves_dir` too (m6_pipeline.tracking)."""
        if checkpoint_dir is not None:
            self.resume(checkpoint_dir)
        curves = Curves(curves_dir, self.step if self.step else None)
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
                curves.log(self.step, {f"train/{k}": v for k, v in row.items() if k != "step"})
                bar.set_postfix(l1=f"{row['reconstruction_l1']:.3f}", usage=f"{row['codebook_usage']:.2f}")
                sums, started, n = {}, time.perf_counter(), 0
            if checkpoint_dir is not None and self.step % self.cfg.checkpoint_every == 0:
                self.save(checkpoint_dir)
        bar.close()
        curves.end()
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
