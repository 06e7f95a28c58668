"""Nodes of the `vqgan` pipeline: thin wrappers from parameters and catalog entries to
m6_pipeline.vqgan. Pair images are streamed from `vqgan.pairs_dir`, by a node only after
`clean_pairs_validation` passes the gate for those very files (m6_pipeline.validation.gate); the
codes are written under `vqgan.codes_dir` and the trained model under `vqgan.model_dir`."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from m6_pipeline.data.file_identity import files_identity
from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.validation.gate import require_passed
from m6_pipeline.vqgan import VQGANJob, load_vqgan, save_vqgan
from m6_pipeline.vqgan.encode import encode_pairs
from m6_pipeline.vqgan.images import load_pair_images
from m6_pipeline.vqgan.report import reconstruction_grid, training_curves
from m6_pipeline.vqgan.train import VQGANTrainer, reconstruction_quality, resolve_precision

log = logging.getLogger(__name__)


def parse_job(vqgan: dict) -> VQGANJob:
    """Validate `parameters_vqgan.yml` into the typed job (errors name the bad key), with
    `training.precision: auto` resolved once for the stage."""
    return resolve_precision(VQGANJob.model_validate(vqgan))


def _images(job: VQGANJob):
    t = job.training
    return load_pair_images(
        job.pairs_dir, job.model.resolution, t.holdout_fraction, t.max_train_images, t.max_holdout_images
    )


def train_vqgan(job: VQGANJob, clean_pairs_validation: dict, corpus_report: dict) -> tuple[dict, dict]:
    """Train (resuming from `checkpoint_dir` after a failure); `corpus_report` orders this stage
    after the corpus accounts. Returns the model card and the training record."""
    require_passed(clean_pairs_validation, "clean_pairs", job.pairs_dir)
    train, holdout, failed = _images(job)
    log.info("vqgan: %d training and %d held-out images at %d px", len(train), len(holdout), job.model.resolution)
    started = time.perf_counter()
    with job.threads():
        trainer = VQGANTrainer(job, inputs={"pairs": files_identity(parquet_files(job.pairs_dir))})
        history = trainer.fit(train, job.checkpoint_dir, job.curves_dir)
        quality = reconstruction_quality(trainer.model, holdout)
    card = save_vqgan(trainer.model, job.model_dir)
    record = {
        "n_train_images": len(train),
        "n_holdout_images": len(holdout),
        "undecodable_ids": failed,
        "seconds": time.perf_counter() - started,
        "perceptual_network": trainer.perceptual.kind,
        "holdout": quality,
        "history": history,
        "precision": trainer.job.precision_choice,
    }
    return {**card, "pairs_dir": str(job.pairs_dir), "grid": job.model.grid, "n_codes": job.model.n_codes,
            "codebook_size": job.model.codebook_size, "resolution": job.model.resolution}, record


def encode_pair_images(job: VQGANJob, clean_pairs_validation: dict, vqgan_card: dict) -> dict:
    """Every clean pair image as codes (Parquet under `codes_dir`); the manifest is returned."""
    require_passed(clean_pairs_validation, "clean_pairs", job.pairs_dir)
    model = load_vqgan(Path(vqgan_card["model_dir"]))
    with job.threads():
        return encode_pairs(model, job.pairs_dir, job.codes_dir, job.encode_batch_size, job.rows_per_file)


def report_vqgan(job: VQGANJob, clean_pairs_validation: dict, vqgan_card: dict, vqgan_training: dict,
                 image_codes_manifest: dict):
    require_passed(clean_pairs_validation, "clean_pairs", job.pairs_dir)
    model = load_vqgan(Path(vqgan_card["model_dir"]))
    _, holdout, _ = load_pair_images(job.pairs_dir, job.model.resolution, job.training.holdout_fraction, 0, 10)
    last = vqgan_training["history"][-1]
    metrics = {
        "psnr_db": vqgan_training["holdout"]["psnr_db"],
        "ssim": vqgan_training["holdout"]["ssim"],
        "n_holdout_images": vqgan_training["holdout"]["n_images"],
        "resolution": job.model.resolution,
        "grid": job.model.grid,
        "codebook_size": job.model.codebook_size,
        "training_codebook_usage": last["codebook_usage"],
        "training_codebook_perplexity": last["codebook_perplexity"],
        "codes_restarted_total": sum(r["codes_restarted"] for r in vqgan_training["history"]),
        "corpus_codebook_usage": image_codes_manifest["corpus_codebook_usage"],
        "corpus_codebook_perplexity": image_codes_manifest["corpus_codebook_perplexity"],
        "n_images_encoded": image_codes_manifest["n_images"],
        "n_images_failed": image_codes_manifest["n_failed"],
        "perceptual_network": vqgan_training["perceptual_network"],
        "training_seconds": vqgan_training["seconds"],
        "final_losses": {k: last[k] for k in ("reconstruction_l1", "perceptual", "commitment", "generator_gan",
                                               "discriminator", "adaptive_weight")},
        "precision": job.precision_choice,
    }
    log.info("vqgan: held-out PSNR %.2f dB, SSIM %.3f, corpus codebook usage %.2f",
             metrics["psnr_db"], metrics["ssim"], metrics["corpus_codebook_usage"])
    return metrics, reconstruction_grid(model, holdout), training_curves(vqgan_training["history"])
