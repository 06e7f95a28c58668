"""Training tokens/s and MFU of one M6-100B-shaped MoE block on one CUDA GPU.

    python benchmarks/gpu_moe_mfu.py [--local-experts 8] [--seq 272 --micro-batch 16]
        [--top-k 1] [--capacity-factor 1.25] [--steps 20 --warmup 5] [--peak-tflops 989] [--dry-run]

M6-100B shards 1024 experts over 128 GPUs: each GPU computes attention for its own tokens and
8 local experts for the tokens the all-to-all brings it. This script times that work on one
GPU without the all-to-all: a pre-LN block of the 100B shape (d 1024, 16 heads, expert width
4096) whose MoE FFN holds --local-experts experts and routes the GPU's own micro-batch × seq
tokens among them with capacity. Forward, backward and a fused AdamW step, bf16 autocast.

Model FLOPs per token (forward + backward = 3 × forward): attention projections 8 d^2, scores
and values 4 T d, the gate 2 d m, and k experts of 2 matrices each 4 d f. MFU = tokens/s ×
FLOPs per token / peak (--peak-tflops, else A100 312, H100/H200 989 dense bf16).

Writes JSON to --output, default $OUT/gpu_moe_mfu.json when $OUT is set, else
benchmarks/results/gpu_moe_mfu.json. Exits with status 2 when there is no CUDA device.
--dry-run builds the configs and checks that torch has `F.grouped_mm` (the experts' products),
without touching CUDA. Runs from a copy of the repository without installing it.
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
from gpu_mfu import peak_tflops, require_cuda  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local-experts", type=int, default=8)
    parser.add_argument("--seq", type=int, default=272)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=1, choices=[1, 2])
    parser.add_argument("--capacity-factor", type=float, default=1.25)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="build the configs, check grouped_mm; no CUDA")
    return parser.parse_args(argv)


def configs(args: argparse.Namespace):
    """The 100B block's M6Config and the local experts' MoEConfig."""
    from m6_pipeline.model.config import M6Config
    from m6_pipeline.model.moe import MoEConfig

    config = M6Config.of_size("100b", dropout=0.0)
    return config, MoEConfig(n_experts=args.local_experts, top_k=args.top_k, capacity_factor=args.capacity_factor)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.dry_run:
        import torch.nn.functional as F

        config, moe = configs(args)
        if not hasattr(F, "grouped_mm"):
            sys.exit("this torch has no torch.nn.functional.grouped_mm, which the MoE layer needs (torch >= 2.9)")
        print(f"dry run: {moe.n_experts} local experts of width {config.expert_width}, top-{moe.top_k}, "
              f"{args.micro_batch} x {args.seq} tokens; no CUDA touched")
        return
    require_cuda()
    import torch

    from m6_pipeline.machine import describe_machine
    from m6_pipeline.model.blocks import Block
    from m6_pipeline.model.moe import MoELayer

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_tflops(args.peak_tflops, name) * 1e12
    torch.manual_seed(0)
    config, moe = configs(args)
    d, f, seq, batch = config.d_model, config.expert_width, args.seq, args.micro_batch
    layer = MoELayer(d, f, moe, init_std=0.02, output_std=0.02 / (2 * config.n_layers) ** 0.5)
    block = Block(config, layer).to(device).train()
    optimizer = torch.optim.AdamW(block.parameters(), lr=1e-4, fused=True)
    x = torch.randn(batch, seq, d, device=device)
    mask = torch.ones(batch, 1, seq, seq, dtype=torch.bool, device=device)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, _ = block(x, mask)
        out.float().square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    windows = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        windows.append((time.perf_counter() - start) / args.steps)
    seconds = statistics.median(windows)
    tokens_per_s = batch * seq / seconds
    flops_per_token = 3 * (8 * d * d + 4 * seq * d + 2 * d * moe.n_experts + args.top_k * 4 * d * f)
    result = {
        "machine": describe_machine(), "device": name, "local_experts": moe.n_experts, "top_k": args.top_k,
        "capacity_factor": args.capacity_factor, "tokens_per_step": batch * seq,
        "step_seconds": seconds, "tokens_per_s": tokens_per_s,
        "model_flops_per_token": flops_per_token, "mfu": tokens_per_s * flops_per_token / peak,
        "drop_rate_last_step": layer.statistics.drop_rate,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
    }
    out = args.output or (Path(os.environ["OUT"]) / "gpu_moe_mfu.json" if os.environ.get("OUT")
                          else ROOT / "benchmarks" / "results" / "gpu_moe_mfu.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
