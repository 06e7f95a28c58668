"""CPU forward+backward throughput of M6's MoE layer against a naive per-expert loop and against
Hugging Face's MixtralSparseMoeBlock.

    .venv/bin/python benchmarks/moe_layer.py [--tokens 4096 --d-model 256 --experts 16 64
        --top-k 2 --threads 2]

All three route top-k tokens with a softmax gate and run no capacity limit here (M6's layer with
capacity_factor = m / k, so no token is dropped and all three compute the same number of
expert-token products):
- ours: `MoELayer` — assignments sorted by expert, experts as two `grouped_mm` calls;
- naive loop: the straightforward implementation, for each expert a boolean mask over all
  tokens, its tokens gathered, its FFN applied, the result scattered back;
- Mixtral: transformers' `MixtralSparseMoeBlock` (a per-expert loop over a one-hot expert mask,
  SwiGLU experts). Its intermediate width is 2/3 of ours so that its three matrices cost the
  FLOPs of our two: the comparison is at equal FLOPs per token.

Interleaved repeats (ours, naive, Mixtral, ours, ...) so machine noise hits all; the median
tokens/s of each and the ratios. Utilisation: expert FLOPs per token 3 * 2 * k * 2 * d * f
(forward + backward of two matrices for each of k experts) plus the gate, against a square fp32
matmul measured in the same run.

Writes benchmarks/results/moe_layer.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from pretrain_throughput import gemm_ceiling  # noqa: E402

from m6_pipeline.machine import describe_machine  # noqa: E402
from m6_pipeline.model.moe import MoEConfig, MoELayer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "moe_layer.json"


class NaiveLoopMoE(nn.Module):
    """Top-k softmax routing and a Python loop over experts with a mask over all tokens."""

    def __init__(self, source: MoELayer) -> None:
        super().__init__()
        self.gate = source.gate
        self.w1, self.b1, self.w2, self.b2 = source.w1, source.b1, source.w2, source.b2
        self.top_k = source.config.top_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        probs = F.linear(flat, self.gate.weight).softmax(-1)
        top_p, top_e = probs.topk(self.top_k, dim=-1)
        out = torch.zeros_like(flat)
        for e in range(self.w1.shape[0]):
            token, slot = (top_e == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            h = F.gelu(flat[token] @ self.w1[e] + self.b1[e]) @ self.w2[e] + self.b2[e]
            out = out.index_add(0, token, h * top_p[token, slot].unsqueeze(1))
        return out.view_as(x)


def mixtral_block(d: int, f: int, m: int, k: int) -> nn.Module:
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    config = MixtralConfig(hidden_size=d, intermediate_size=f, num_local_experts=m, num_experts_per_tok=k)
    return MixtralSparseMoeBlock(config)


def step_seconds(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> float:
    start = time.perf_counter()
    out = module(x)
    out = out[0] if isinstance(out, tuple) else out
    (out * upstream).sum().backward()
    module.zero_grad(set_to_none=True)
    x.grad = None
    return time.perf_counter() - start


def bench(tokens: int, d: int, f: int, m: int, k: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ours = MoELayer(d, f, MoEConfig(n_experts=m, top_k=k, capacity_factor=m / k, min_capacity=1),
                    init_std=0.02, output_std=0.02)
    contenders = {"ours": ours, "naive_loop": NaiveLoopMoE(ours), "mixtral": mixtral_block(d, 2 * f // 3, m, k)}
    x = torch.randn(tokens // 256, 256, d, requires_grad=True)
    upstream = torch.randn_like(x)
    for module in contenders.values():  # warm-up
        step_seconds(module, x, upstream)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, module in contenders.items():
            times[name].append(step_seconds(module, x, upstream))
    assert ours.statistics.n_dropped == 0, "the comparison assumes no dropped tokens"
    flops_per_token = 3 * (2 * k * 2 * d * f + 2 * d * m)
    result = {"tokens": tokens, "d_model": d, "d_expert": f, "n_experts": m, "top_k": k}
    for name, seconds in times.items():
        rate = tokens / statistics.median(seconds)
        result[name] = {"tokens_per_s": rate, "gflop_per_s": rate * flops_per_token / 1e9}
    result["ours_over_naive_loop"] = result["ours"]["tokens_per_s"] / result["naive_loop"]["tokens_per_s"]
    result["ours_over_mixtral"] = result["ours"]["tokens_per_s"] / result["mixtral"]["tokens_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--d-expert", type=int, default=1024)
    parser.add_argument("--experts", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ceiling = gemm_ceiling(torch.float32)
    rows = [
        bench(args.tokens, args.d_model, args.d_expert, m, k, args.repeats)
        for m in args.experts for k in args.top_k
    ]
    for row in rows:
        row["ours_utilisation"] = row["ours"]["gflop_per_s"] / ceiling
    out = {"machine": describe_machine(), "threads": args.threads,
           "torch": torch.__version__, "gemm_ceiling_gflop_per_s_fp32": ceiling, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"fp32 GEMM ceiling {ceiling:.0f} GFLOP/s on {args.threads} threads")
    print(f"{'experts':>7} {'k':>2} {'ours tok/s':>11} {'naive tok/s':>11} {'mixtral tok/s':>13} "
          f"{'/naive':>7} {'/mixtral':>8} {'util':>6}")
    for r in rows:
        print(f"{r['n_experts']:>7} {r['top_k']:>2} {r['ours']['tokens_per_s']:>11,.0f} "
              f"{r['naive_loop']['tokens_per_s']:>11,.0f} {r['mixtral']['tokens_per_s']:>13,.0f} "
              f"{r['ours_over_naive_loop']:>7.2f} {r['ours_over_mixtral']:>8.2f} {r['ours_utilisation']:>6.1%}")


if __name__ == "__main__":
    main()
