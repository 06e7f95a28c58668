"""CPU training-step throughput of M6Model against Hugging Face's GPT2LMHeadModel.

    .venv/bin/python benchmarks/pretrain_throughput.py [--d-model 256 --layers 4 --heads 4
        --vocab 6000 --seq 128 --batch 16] [--compile] [--profile]

Both models have the same width, depth, heads, vocabulary and sequence length, no dropout,
tied output layers, SDPA attention, the same fused AdamW and the same batch of tokens. GPT-2
runs at its fastest settings: its tanh-approximated GELU through PyTorch's fused kernel
(`gelu_pytorch_tanh`, the same function as its own unfused "gelu_new") and, at each precision,
the SDPA kernel that its own warm-up timed fastest (flash or math; M6 keeps its rule in
model/blocks.py, math on CPU in bf16, the kernel that the same measurement picks for it). M6
runs BERT's exact GELU. Two workloads:
language_modelling (empty prefix, the whole sequence a causal target; GPT-2 gets labels=ids and
shifts inside, so both predict batch * (seq - 1) tokens) and text_denoising, M6's own shape of
batch (the first half of each sequence is the bidirectional masked-text prefix, only the second
half is scored; GPT-2 gets the same ids with the prefix labels set to -100). M6 computes the
output layer only where a token is scored, chunked with its loss (`linear_cross_entropy`);
GPT-2 computes it everywhere. That loss is part of M6's gain, so its share is reported on its
own: each model is also timed with the output layer and loss replaced by the same cheap loss on
the final hidden states ("body"), and the body ratio is the gain of the blocks alone.
Precisions: fp32, and bf16 autocast where the CPU runs bf16 natively (AMX or AVX-512-BF16;
`--precisions` to force). The two models are warmed up, then timed in repeats whose order
alternates (M6 first, then GPT-2 first, ...) so that neither always runs on a warmer machine;
the table reports the median tokens/s of each, the ratio of the medians ours/HF, the median of
the per-repeat ratios ("paired") and the ratio of the best repeats.

Utilisation: model FLOPs per token = 6 * N_nonembedding + 12 * L * d * T (Kaplan et al. 2020's
6N for the forward and backward matrix products of the blocks, plus the attention score and
value products, forward + backward, over all T keys; the causal half is not discounted, as in
Megatron's and PaLM's MFU). A second figure adds the tied output layer (6 * V * d per token).
The ceiling is a square torch.matmul (2048^3) at the same precision and thread count, measured
in the same run.

Writes benchmarks/results/pretrain_throughput.json and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from record import header  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pretrain_throughput.json"
M6_ACTIVATION = "gelu"  # M6Config.activation: BERT's exact GELU


def gemm_ceiling(dtype: torch.dtype, n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of a square n^3 matmul at `dtype` (median of `repeats`, after one warm-up)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def build_m6(args: argparse.Namespace) -> nn.Module:
    from m6_pipeline.model.config import M6Config
    from m6_pipeline.model.m6 import M6Model

    config = M6Config(
        vocab_size=args.vocab,
        n_layers=args.layers,
        d_model=args.d_model,
        n_heads=args.heads,
        max_positions=args.seq,
        dropout=0.0,
        activation=M6_ACTIVATION,
    )
    return M6Model(config)


def build_gpt2(args: argparse.Namespace) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        n_embd=args.d_model,
        n_layer=args.layers,
        n_head=args.heads,
        vocab_size=args.vocab,
        n_positions=args.seq,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="sdpa",
        activation_function=args.hf_activation,
    )
    model = GPT2LMHeadModel(config)
    model.config.use_cache = False
    return model


def m6_batch(ids: torch.Tensor, prefix: int = 0) -> dict[str, torch.Tensor]:
    """`prefix` = 0: the language_modelling layout (every position a causal target).
    `prefix` > 0: the text_denoising layout, a bidirectional prefix (the masked text) and a
    causal target after it; only target positions are scored."""
    from m6_pipeline.model.m6 import IGNORE_INDEX
    from m6_pipeline.model.masking import MASKED_TEXT, TARGET_TEXT

    batch, seq = ids.shape
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, prefix:-1] = ids[:, prefix + 1 :]
    segments = torch.full_like(ids, TARGET_TEXT)
    segments[:, :prefix] = MASKED_TEXT
    return {
        "input_ids": ids,
        "segment_ids": segments,
        "prefix_lengths": torch.full((batch,), prefix, dtype=torch.long),
        "lengths": torch.full((batch,), seq, dtype=torch.long),
        "labels": labels,
    }


def body_loss(hidden: torch.Tensor) -> torch.Tensor:
    """The same cheap loss on both models' final hidden states: the blocks' cost without the
    output layer and cross entropy."""
    return hidden.float().square().mean()


def m6_body(model: nn.Module, batch: dict) -> Callable[[], torch.Tensor]:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return lambda: body_loss(model(**inputs))


def gpt2_body(model: nn.Module, batch: dict) -> Callable[[], torch.Tensor]:
    return lambda: body_loss(model.transformer(input_ids=batch["input_ids"]).last_hidden_state)


def gpt2_batch(ids: torch.Tensor, prefix: int = 0) -> dict[str, torch.Tensor]:
    """The same ids and the same scored tokens: GPT-2 shifts labels inside, so the prefix and
    the first target position are ignored (-100)."""
    labels = ids.clone()
    if prefix:
        labels[:, : prefix + 1] = -100
    return {"input_ids": ids, "labels": labels}


def non_embedding_parameters(model: nn.Module) -> int:
    """Parameters of the transformer blocks and final norm: not the word/position/segment
    embeddings (the tied output layer is the word embedding) nor M6's patch projection, which a
    text-only batch does not use."""
    skip = ("embeddings.", "wte.", "wpe.", "lm_head.")
    return sum(p.numel() for n, p in model.named_parameters() if not any(s in n for s in skip))


def make_step(
    model: nn.Module, batch: dict, precision: str, loss_fn: Callable[[], torch.Tensor] | None = None,
    kernel: SDPBackend | None = None,
) -> Callable[[], float]:
    """bf16: fp32 weights under bf16 autocast; bf16-master: bf16 weights and math with fp32
    master weights in the optimizer (the same recipe for both models); fp32. `loss_fn` replaces
    the model's own loss (the body-only timing); `kernel` pins the SDPA kernel (GPT-2's best)."""
    if precision == "bf16-master":
        from m6_pipeline.training.precision import MasterWeightAdamW

        model.to(torch.bfloat16)
        optimizer = MasterWeightAdamW(model, lr=1e-4, weight_decay=0.01, fused=True)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    autocast = precision == "bf16"

    def forward() -> torch.Tensor:
        if loss_fn is not None:
            return loss_fn()
        out = model(**batch)
        return out if isinstance(out, torch.Tensor) else out.loss

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        pinned = sdpa_kernel(kernel) if kernel is not None else contextlib.nullcontext()
        with pinned, torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = forward()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_steps(step: Callable[[], float], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - start


def profile_steps(step: Callable[[], float], n: int, label: str, row_limit: int) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            step()
    averages = prof.key_averages()
    print(f"\n--- profile: {label} ({n} steps) ---")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=row_limit))
    total = sum(e.self_cpu_time_total for e in averages)
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:row_limit]
    return [
        {
            "op": e.key,
            "self_ms_per_step": e.self_cpu_time_total / 1e3 / n,
            "self_share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / n,
        }
        for e in top
    ]


GPT2_KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def fastest_gpt2_kernel(args: argparse.Namespace, batch: dict, precision: str) -> tuple[str, dict[str, float]]:
    """GPT-2's SDPA kernel at this precision: each candidate times `args.warmup` steps after one
    untimed step on a fresh model; the faster is GPT-2's for the whole comparison."""
    seconds = {}
    for name, kernel in GPT2_KERNELS.items():
        torch.manual_seed(0)
        step = make_step(build_gpt2(args).train(), batch, precision, kernel=kernel)
        step()
        seconds[name] = time_steps(step, args.warmup) / args.warmup
    return min(seconds, key=seconds.get), seconds


def contenders(args: argparse.Namespace, batches: dict, precision: str, kernel: str, compiled: bool) -> dict:
    """{name: step} for M6 and GPT-2, each with its own loss ("full") and with the body loss."""
    steps = {}
    for name, build, body in (("m6", build_m6, m6_body), ("hf_gpt2", build_gpt2, gpt2_body)):
        for variant in ("full", "body"):
            torch.manual_seed(0)
            model = build(args).train()
            if compiled:
                model = torch.compile(model)
            steps[f"{name}/{variant}"] = make_step(
                model, batches[name], precision, loss_fn=body(model, batches[name]) if variant == "body" else None,
                kernel=GPT2_KERNELS[kernel] if name == "hf_gpt2" else None)
    return steps


def run(args: argparse.Namespace) -> dict:
    from m6_pipeline.machine import has_native_bf16

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    precisions = args.precisions or (["fp32", "bf16"] if has_native_bf16() else ["fp32"])
    ceilings = {"fp32": gemm_ceiling(torch.float32)}
    if any(p.startswith("bf16") for p in precisions):
        ceilings["bf16"] = ceilings["bf16-master"] = gemm_ceiling(torch.bfloat16)
    ids = torch.randint(4, args.vocab, (args.batch, args.seq))
    tokens_per_step = args.batch * args.seq
    attention_per_token = 12 * args.layers * args.d_model * args.seq
    n_params = {"m6": non_embedding_parameters(build_m6(args)), "hf_gpt2": non_embedding_parameters(build_gpt2(args))}
    flops_per_token = {name: 6 * n + attention_per_token for name, n in n_params.items()}
    rows = []
    profiles: dict[str, list[dict]] = {}
    for workload, precision in itertools.product(args.workloads, precisions):
        prefix = 0 if workload == "language_modelling" else args.seq // 2
        batches = {"m6": m6_batch(ids, prefix), "hf_gpt2": gpt2_batch(ids, prefix)}
        kernel, kernel_seconds = fastest_gpt2_kernel(args, batches["hf_gpt2"], precision)
        print(f"{workload}/{precision}: GPT-2's SDPA kernel {kernel} "
              + ", ".join(f"{k} {v * 1e3:.0f} ms/step" for k, v in kernel_seconds.items()))
        for compiled in [False, True] if args.compile else [False]:
            steps = contenders(args, batches, precision, kernel, compiled)
            start = time.perf_counter()
            for _ in range(args.warmup):
                for step in steps.values():
                    step()
            print(f"{workload}/{precision}{' compiled' if compiled else ''}: warm-up {time.perf_counter() - start:.1f} s")
            rates: dict[str, list[float]] = {name: [] for name in steps}
            for repeat in range(args.repeats):
                # M6 first on even repeats, GPT-2 first on odd ones: neither always runs second
                order = sorted(steps, key=lambda n: (n.split("/")[1], n.startswith("m6") == bool(repeat % 2)))
                for name in order:
                    rates[name].append(args.steps * tokens_per_step / time_steps(steps[name], args.steps))
            label = f"{workload}/{precision}{'+compile' if compiled else ''}"
            medians = {name: statistics.median(v) for name, v in rates.items()}
            ceiling = ceilings[precision]
            row = {
                "setting": label,
                "workload": workload,
                "precision": precision,
                "compiled": compiled,
                "hf_gpt2_sdpa_kernel": kernel,
                "hf_gpt2_sdpa_kernel_seconds_per_step": kernel_seconds,
                "ratio_ours_over_hf": medians["m6/full"] / medians["hf_gpt2/full"],
                # each repeat's M6 against its GPT-2: the pair shares the machine's state
                "ratio_paired_median": statistics.median(
                    a / b for a, b in zip(rates["m6/full"], rates["hf_gpt2/full"], strict=True)),
                "ratio_best_ours_over_hf": max(rates["m6/full"]) / max(rates["hf_gpt2/full"]),
                # the blocks alone (output layer and loss replaced by the same cheap loss)
                "body_ratio_ours_over_hf": medians["m6/body"] / medians["hf_gpt2/body"],
                "gemm_ceiling_gflops": ceiling,
            }
            for name in n_params:
                full, body = medians[f"{name}/full"], medians[f"{name}/body"]
                achieved = full * flops_per_token[name] / 1e9
                row[name] = {
                    "tokens_per_s_median": full,
                    "tokens_per_s_all": rates[f"{name}/full"],
                    "body_tokens_per_s_median": body,
                    # the share of a step spent in the output layer and its loss
                    "output_layer_and_loss_share": 1 - full / body,
                    "non_embedding_params": n_params[name],
                    "model_gflops": achieved,
                    "utilisation_of_gemm_ceiling": achieved / ceiling,
                    "utilisation_with_output_layer": full * (flops_per_token[name] + 6 * args.vocab * args.d_model)
                    / 1e9 / ceiling,
                }
            rows.append(row)
            if args.profile:
                for name in ("m6/full", "hf_gpt2/full"):
                    profiles[f"{name}/{label}"] = profile_steps(
                        steps[name], args.profile_steps, f"{name} {label}", args.profile_rows)
    return {
        **header(threads=args.threads),
        "shape": {
            "d_model": args.d_model,
            "layers": args.layers,
            "heads": args.heads,
            "vocab": args.vocab,
            "seq": args.seq,
            "batch": args.batch,
            "tokens_per_step": tokens_per_step,
            "activation": {"m6": M6_ACTIVATION, "hf_gpt2": args.hf_activation},
        },
        "protocol": {
            "warmup_steps": args.warmup,
            "steps_per_repeat": args.steps,
            "repeats": args.repeats,
            "order": "alternating: M6 first on even repeats, GPT-2 first on odd ones; full, then body",
            "optimizer": "torch.optim.AdamW(lr=1e-4, weight_decay=0.01), fused=True (both models)",
            "hf_gpt2_sdpa_kernel": "the faster of flash and math in its own timed warm-up, per setting",
            "body": "output layer and loss replaced by mean(hidden^2) on the final hidden states (both models)",
        },
        "flops_formula": (
            "model FLOPs/token = 6*N_nonembedding + 12*L*d*T; "
            "'with_output_layer' adds 6*V*d; ceiling = torch.matmul 2048^3 GFLOP/s"
        ),
        "gemm_ceiling_gflops": ceilings,
        "rows": rows,
        "target": "M6 >= 1.2x the tuned GPT-2 on language_modelling",
        "profiles": profiles,
    }


def print_table(result: dict) -> None:
    print(
        f"\n{'setting':<26}{'M6 tok/s':>10}{'HF tok/s':>10}{'ours/HF':>9}{'paired':>8}{'best':>6}"
        f"{'body':>6}{'M6 loss':>8}{'HF loss':>8}{'HF sdpa':>8}{'M6 util':>9}{'HF util':>9}"
    )
    for row in result["rows"]:
        m6, hf = row["m6"], row["hf_gpt2"]
        print(
            f"{row['setting']:<26}{m6['tokens_per_s_median']:>10.0f}"
            f"{hf['tokens_per_s_median']:>10.0f}{row['ratio_ours_over_hf']:>9.2f}"
            f"{row['ratio_paired_median']:>8.2f}{row['ratio_best_ours_over_hf']:>6.2f}"
            f"{row['body_ratio_ours_over_hf']:>6.2f}{m6['output_layer_and_loss_share']:>8.0%}"
            f"{hf['output_layer_and_loss_share']:>8.0%}{row['hf_gpt2_sdpa_kernel']:>8}"
            f"{m6['utilisation_of_gemm_ceiling']:>9.1%}{hf['utilisation_of_gemm_ceiling']:>9.1%}"
        )
    print("body: the blocks alone; loss: the share of a step in the output layer and its loss")
    print(result["flops_formula"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=6000)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--precisions", nargs="+", default=None, choices=["bf16", "bf16-master", "fp32"],
        help="default: fp32, and bf16 where the CPU runs it natively (AMX or AVX-512-BF16)",
    )
    parser.add_argument(
        "--workloads", nargs="+", default=["language_modelling", "text_denoising"],
        choices=["language_modelling", "text_denoising"],
        help="text_denoising: the first half of each sequence is the bidirectional prefix",
    )
    parser.add_argument(
        "--hf-activation", default="gelu_pytorch_tanh", choices=["gelu_pytorch_tanh", "gelu_new", "gelu"],
        help="GPT-2's FFN activation: its tanh approximation in PyTorch's fused kernel (default), "
        "the same unfused (gelu_new, GPT-2's own config), or BERT's exact GELU",
    )
    parser.add_argument("--compile", action="store_true", help="also time both under torch.compile")
    parser.add_argument("--profile", action="store_true", help="torch.profiler tables per model")
    parser.add_argument("--profile-steps", type=int, default=3)
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print_table(result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
