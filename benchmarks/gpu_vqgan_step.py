"""VQGAN training step time on one CUDA GPU at paper scale (256 px, 16x16 codes, 1024 codes):
generator step (L1 + perceptual + commitment + adaptively weighted hinge GAN) and
discriminator step, bf16 autocast, the project's VQGAN and losses.

    python benchmarks/gpu_vqgan_step.py [--batch 12] [--steps 20 --warmup 5] [--dry-run]

Reports images/s and ms per step; with --perceptual-weights a real VGG16 trunk, else the random
substitute. Writes JSON to --output, default $OUT/gpu_vqgan_step.json when $OUT is set, else
benchmarks/results/gpu_vqgan_step.json. Exits with status 2 when there is no CUDA device.
--dry-run validates the job and exits without touching CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
from gpu_mfu import require_cuda  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--perceptual-weights", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="validate the job; no CUDA")
    return parser.parse_args(argv)


def vqgan_job(args: argparse.Namespace):
    from m6_pipeline.vqgan import VQGANJob

    return VQGANJob.model_validate({
        "loss": {"disc_start": 0, "perceptual_weights": str(args.perceptual_weights) if args.perceptual_weights else None},
        "training": {"batch_size": args.batch},
    })


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    job = vqgan_job(args)
    if args.dry_run:
        print(f"dry run: VQGAN {job.model.grid}x{job.model.grid} codes of {job.model.codebook_size}, "
              f"batch {args.batch}; no CUDA touched")
        return
    require_cuda()
    import torch

    from m6_pipeline.machine import describe_machine
    from m6_pipeline.vqgan.train import VQGANTrainer

    trainer = VQGANTrainer(job)
    device = torch.device("cuda")
    for module in (trainer.model, trainer.discriminator, trainer.perceptual):
        module.to(device)
    for optimizer in (trainer.opt_g, trainer.opt_d):  # state is created lazily on the device
        optimizer.state.clear()
    from m6_pipeline.vqgan.codebook import CodebookMeter

    meter = CodebookMeter(job.model.codebook_size)
    x = torch.rand(args.batch, 3, 256, 256, device=device) * 2 - 1
    times = []
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            trainer.train_step(x, meter)
        torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - started)
    median = statistics.median(times)
    result = {
        "machine": describe_machine(),
        "device": torch.cuda.get_device_name(),
        "batch": args.batch, "resolution": 256, "grid": job.model.grid, "codebook_size": job.model.codebook_size,
        "perceptual_network": trainer.perceptual.kind,
        "ms_per_step": 1000 * median, "images_per_s": args.batch / median,
        "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    output = args.output or (Path(os.environ["OUT"]) / "gpu_vqgan_step.json" if os.environ.get("OUT")
                             else ROOT / "benchmarks/results/gpu_vqgan_step.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
