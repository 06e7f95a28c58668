"""Training tokens/s and model-FLOPs utilisation (MFU) of M6 on one CUDA GPU.

    python benchmarks/gpu_mfu.py [--size base] [--seq 512] [--micro-batch 8 16 32]
        [--steps 20 --warmup 5] [--precision autocast|bf16-master] [--compile]
        [--peak-tflops 989] [--output PATH] [--dry-run]

Builds M6 at a named size of Table 4 (`M6Config.of_size`), feeds it language_modelling batches
(empty prefix, every position a causal target) of micro-batch x seq tokens, and times optimizer
steps after a warm-up, synchronising the GPU around the timed window. Several --micro-batch
values make a sweep on the same model and optimizer, smallest first; one that runs out of
memory is recorded as such and ends the sweep. --dry-run builds the config and prints the
planner's memory for each micro-batch on an H200 without touching CUDA.

Precision:
- autocast: fp32 weights, bf16 math under torch.autocast, fused AdamW on the fp32 weights
  (what the torch_ddp plugin runs);
- bf16-master: bf16 weights and gradients, an fp32 master copy stepped by fused AdamW and copied
  back (what the ZeRO plugins do, without the sharding).

MFU = tokens/s x model FLOPs per token / peak, with model FLOPs per token = 6 N + 12 L d T (N the
parameters in matrix products, from the planner, `m6_pipeline.training.planner`); the peak is
--peak-tflops, else looked up from the device name (A100 312, H100/H200 989 dense bf16). The
planner's per-GPU memory for the same run is printed beside the measured peak allocation.

Writes JSON to --output, default $OUT/gpu_mfu.json when $OUT is set, else
benchmarks/results/gpu_mfu.json: one record per micro-batch under "runs", the fastest one's
figures at the top level. Exits with status 2 and a message when there is no CUDA device.
Runs from a copy of the repository without installing it (src/ goes on the import path).
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
sys.path.insert(0, str(ROOT / "src"))
# dense bf16 tensor TFLOP/s by a substring of torch.cuda.get_device_name()
PEAK_TFLOPS_BF16 = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def default_output() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu_mfu.json" if out else ROOT / "benchmarks" / "results" / "gpu_mfu.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="base", help="a named size of M6Config (base, 10b, tiny)")
    parser.add_argument("--vocab", type=int, default=None, help="override the vocabulary size")
    parser.add_argument("--seq", type=int, default=512, help="positions per sequence")
    parser.add_argument("--micro-batch", type=int, nargs="+", default=[8], help="sequences per step (a sweep)")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (and compile)")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows of --steps each")
    parser.add_argument("--precision", choices=["autocast", "bf16-master"], default="autocast")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s")
    parser.add_argument("--output", type=Path, default=None, help="JSON result path")
    parser.add_argument("--dry-run", action="store_true", help="build the config and plan; no CUDA")
    return parser.parse_args(argv)


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"gpu_mfu.py needs a CUDA GPU, and torch {torch.__version__} ({build}) sees none. "
            "Run it on a GPU machine; for CPU throughput use benchmarks/pretrain_throughput.py.",
            file=sys.stderr,
        )
        sys.exit(2)


def peak_tflops(requested: float | None, device_name: str) -> float:
    if requested is not None:
        return requested
    for key, value in PEAK_TFLOPS_BF16.items():
        if key in device_name:
            return value
    sys.exit(f"no known bf16 peak for {device_name!r}: pass --peak-tflops")


def model_config(args: argparse.Namespace):
    from m6_pipeline.model.config import M6Config

    overrides: dict[str, object] = {
        "max_positions": max(512, args.seq),
        "dropout": args.dropout,
        "activation_checkpointing": args.activation_checkpointing,
    }
    if args.vocab:
        overrides["vocab_size"] = args.vocab
    return M6Config.of_size(args.size, **overrides)


def planned(args: argparse.Namespace, config, batch: int, name: str, memory_gib: float, peak: float):
    """The planner's figures for this run (the torch_ddp plan counts DDP buckets, 4 B/param,
    that a single-GPU run lacks)."""
    from m6_pipeline.training.planner import ClusterSpec, PlanSettings, plan

    return plan(
        config,
        ClusterSpec(name=name, n_gpus=1, gpu_memory_gib=memory_gib, peak_tflops_bf16=peak),
        PlanSettings(
            plugin="torch_ddp" if args.precision == "autocast" else "low_level_zero",
            micro_batch_size=batch,
            seq_len=args.seq,
            activation_checkpointing=args.activation_checkpointing,
        ),
    )


def dry_run(args: argparse.Namespace) -> None:
    from m6_pipeline.training.planner import GIB

    config = model_config(args)
    for batch in args.micro_batch:
        p = planned(args, config, batch, "H200 (assumed)", 141.0, peak_tflops(args.peak_tflops, "H200"))
        print(f"dry run: M6-{args.size} {args.precision}, {batch} x {args.seq}: planned "
              f"{p.allocated_bytes / GIB:.1f} GiB allocated on a 141 GiB H200; no CUDA touched")


def measure(args: argparse.Namespace, model, config, batch: int) -> dict:
    """Tokens/s of optimizer steps at one micro-batch (median of --repeats windows)."""
    import torch

    from m6_pipeline.model.m6 import IGNORE_INDEX
    from m6_pipeline.model.masking import TARGET_TEXT

    device = torch.device("cuda")
    if args.precision == "bf16-master":
        weights = [p for p in model.parameters() if p.requires_grad]
        master = [p.detach().float().clone().requires_grad_(True) for p in weights]
    else:
        weights = master = list(model.parameters())
    optimizer = torch.optim.AdamW(master, lr=1e-4, weight_decay=0.01, fused=True)
    forward = torch.compile(model) if args.compile else model
    seq = args.seq
    ids = torch.randint(4, config.vocab_size, (batch, seq), device=device)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, :-1] = ids[:, 1:]
    inputs = {
        "input_ids": ids,
        "segment_ids": torch.full_like(ids, TARGET_TEXT),
        "prefix_lengths": torch.zeros(batch, dtype=torch.long, device=device),
        "lengths": torch.full((batch,), seq, dtype=torch.long, device=device),
        "labels": labels,
    }

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if args.precision == "bf16-master":
            model.zero_grad(set_to_none=True)
            forward(**inputs).backward()
            for m, w in zip(master, weights, strict=True):
                m.grad = None if w.grad is None else w.grad.float()
            optimizer.step()
            with torch.no_grad():
                torch._foreach_copy_(weights, master)
        else:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = forward(**inputs)
            loss.backward()
            optimizer.step()

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(args.repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        torch.cuda.synchronize()
        rates.append(args.steps * batch * seq / (time.perf_counter() - start))
    return {"micro_batch": batch, "warmup_s": warmup_s, "tokens_per_s_median": statistics.median(rates),
            "tokens_per_s_all": rates, "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.dry_run:
        dry_run(args)
        return
    require_cuda()
    import torch

    from m6_pipeline.machine import describe_machine
    from m6_pipeline.model.m6 import M6Model
    from m6_pipeline.training.planner import GIB

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_tflops(args.peak_tflops, name)
    memory_gib = torch.cuda.get_device_properties(device).total_memory / GIB
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.manual_seed(0)
    config = model_config(args)
    model = M6Model(config).to(device).train()
    if args.precision == "bf16-master":
        model = model.to(torch.bfloat16)

    runs = []
    for batch in sorted(args.micro_batch):
        plan = planned(args, config, batch, name, memory_gib, peak)
        try:
            run = measure(args, model, config, batch)
        except torch.OutOfMemoryError:
            model.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            runs.append({"micro_batch": batch, "error": f"out of memory at {batch} x {args.seq} on {name}",
                         "planned_allocated_gib": plan.allocated_bytes / GIB})
            print(f"{name}: micro-batch {batch}: out of memory (planned {plan.allocated_bytes / GIB:.1f} GiB)")
            break
        achieved = run["tokens_per_s_median"] * plan.model_flops_per_token
        run.update(
            samples_per_s=run["tokens_per_s_median"] / args.seq,
            achieved_tflops=achieved / 1e12,
            mfu=achieved / (peak * 1e12),
            planned_allocated_gib=plan.allocated_bytes / GIB,
            planned_total_gib=plan.total_bytes / GIB,
        )
        runs.append(run)
        print(
            f"{name}: M6-{args.size} {args.precision}{' compiled' if args.compile else ''}, "
            f"{batch} x {args.seq}: {run['tokens_per_s_median']:,.0f} tokens/s, {achieved / 1e12:.1f} TFLOP/s, "
            f"MFU {run['mfu']:.1%} of {peak:.0f}; peak memory {run['max_memory_allocated_gib']:.1f} GiB "
            f"(planned {run['planned_allocated_gib']:.1f})",
            flush=True,
        )
    measured = [run for run in runs if "error" not in run]
    if not measured:
        sys.exit(f"no micro-batch of {args.micro_batch} fits on {name}: add --activation-checkpointing")
    best = max(measured, key=lambda run: run["tokens_per_s_median"])
    result = {
        "machine": describe_machine(),
        "device": name,
        "torch": torch.__version__,
        "size": args.size,
        "n_params_full": plan.n_params_full,
        "n_params_matmul": plan.n_params_matmul,
        "seq": args.seq,
        "precision": args.precision,
        "compiled": args.compile,
        "activation_checkpointing": args.activation_checkpointing,
        "dropout": args.dropout,
        "model_flops_per_token": plan.model_flops_per_token,
        "flops_formula": "6*N_matmul + 12*L*d*T per token",
        "peak_tflops": peak,
        **best,
        "runs": runs,
        "planner_note": "torch_ddp plan counts DDP buckets (4 B/param) this single-GPU run lacks",
    }
    output = args.output or default_output()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(f"best: micro-batch {best['micro_batch']}, MFU {best['mfu']:.1%}; wrote {output}")


if __name__ == "__main__":
    main()
