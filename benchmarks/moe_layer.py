"""CPU forward+backward throughput of M6's MoE layer against Hugging Face's
MixtralSparseMoeBlock (the main peer) and a plain per-expert loop.

    .venv/bin/python benchmarks/moe_layer.py [--tokens 4096 --d-model 256 --experts 16 64
        --top-k 1 2 --threads 2 --precisions fp32 bf16]

All three route top-k tokens with the gate's softmax and run no capacity limit here (M6's layer
with capacity_factor = m / k and the paper's top-k selection in training, so no token is
dropped and all three compute the same number of expert-token products):
- ours: `MoELayer`, assignments sorted by expert, the experts as two `grouped_mm` calls;
- Mixtral: transformers' `MixtralSparseMoeBlock` (a loop over the experts that received
  tokens, SwiGLU experts). Its intermediate width is 2/3 of ours so that its three matrices
  cost the FLOPs of our two: the comparison is at equal FLOPs per token;
- per-expert loop: what one writes first, one `nn.Linear`-GELU-`nn.Linear` module per expert
  holding ours' weights, its tokens gathered, the module applied, the result scattered back.
  Its outputs are checked against ours (the same function), so the two are known to agree.

Precisions: fp32, and bf16 autocast where the CPU runs bf16 natively (AMX or AVX-512-BF16).
Repeats rotate the order (ours, Mixtral, loop; then Mixtral, loop, ours; ...) so that noise and
warmth hit all; the median tokens/s of each and the ratios. Utilisation: expert FLOPs per token
3 * 2 * k * 2 * d * f (forward + backward of two matrices for each of k experts) plus the gate,
against a square matmul at the same precision measured in the same run.

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

from record import header  # noqa: E402

from m6_pipeline.machine import has_native_bf16  # noqa: E402
from m6_pipeline.model.moe import MoEConfig, MoELayer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "moe_layer.json"


class PerExpertLoopMoE(nn.Module):
    """Top-k softmax routing and a Python loop over per-expert modules, holding `source`'s
    weights (copied): the same function as `source`, computed one expert at a time."""

    def __init__(self, source: MoELayer) -> None:
        super().__init__()
        d, f = source.w1.shape[1:]
        self.gate = nn.Linear(d, source.w1.shape[0], bias=False)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d, f), nn.GELU(approximate=source.approximate), nn.Linear(f, d))
            for _ in range(source.w1.shape[0]))
        with torch.no_grad():
            self.gate.weight.copy_(source.gate.weight)
            for e, expert in enumerate(self.experts):
                expert[0].weight.copy_(source.w1[e].T)
                expert[0].bias.copy_(source.b1[e])
                expert[2].weight.copy_(source.w2[e].T)
                expert[2].bias.copy_(source.b2[e])
        self.top_k = source.config.top_k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        with torch.autocast(x.device.type, enabled=False):  # the router in fp32, as ours
            probs = F.linear(flat.float(), self.gate.weight).softmax(-1)
        top_p, top_e = probs.topk(self.top_k, dim=-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = (top_e == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            h = expert(flat[token]).to(flat.dtype)
            out = out.index_add(0, token, h * top_p[token, slot].unsqueeze(1).to(flat.dtype))
        return out.view_as(x)


def mixtral_block(d: int, f: int, m: int, k: int) -> nn.Module:
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    config = MixtralConfig(hidden_size=d, intermediate_size=f, num_local_experts=m, num_experts_per_tok=k)
    return MixtralSparseMoeBlock(config)


def step_seconds(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor, precision: str) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
    (out.float() * upstream).sum().backward()
    module.zero_grad(set_to_none=True)
    x.grad = None
    return time.perf_counter() - start


@torch.no_grad()
def agreement(ours: MoELayer, loop: PerExpertLoopMoE, x: torch.Tensor) -> float:
    """Largest absolute difference of the two outputs in fp32, relative to ours' largest value."""
    reference = ours(x)
    return float((reference - loop(x)).abs().max() / reference.abs().max())


def bench(tokens: int, d: int, f: int, m: int, k: int, repeats: int, precision: str) -> dict:
    torch.manual_seed(0)
    config = MoEConfig(n_experts=m, top_k=k, capacity_factor=m / k, min_capacity=1, train_selection="softmax")
    ours = MoELayer(d, f, config, init_std=0.02, output_std=0.02)
    contenders = {"ours": ours, "mixtral": mixtral_block(d, 2 * f // 3, m, k), "per_expert_loop": PerExpertLoopMoE(ours)}
    x = torch.randn(tokens // 256, 256, d, requires_grad=True)
    upstream = torch.randn_like(x)
    difference = agreement(ours, contenders["per_expert_loop"], x)
    if difference > 1e-4:
        raise SystemExit(f"the per-expert loop disagrees with ours by {difference:.2e}: the comparison is void")
    for module in contenders.values():  # warm-up
        step_seconds(module, x, upstream, precision)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for repeat in range(repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:  # the order rotates
            times[name].append(step_seconds(contenders[name], x, upstream, precision))
    assert ours.statistics.n_dropped == 0, "the comparison assumes no dropped tokens"
    flops_per_token = 3 * (2 * k * 2 * d * f + 2 * d * m)
    result = {"precision": precision, "tokens": tokens, "d_model": d, "d_expert": f, "n_experts": m, "top_k": k,
              "per_expert_loop_max_relative_difference": difference}
    for name, seconds in times.items():
        rate = tokens / statistics.median(seconds)
        result[name] = {"tokens_per_s": rate, "gflop_per_s": rate * flops_per_token / 1e9}
    result["ours_over_mixtral"] = result["ours"]["tokens_per_s"] / result["mixtral"]["tokens_per_s"]
    result["ours_over_per_expert_loop"] = result["ours"]["tokens_per_s"] / result["per_expert_loop"]["tokens_per_s"]
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
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="default: fp32, and bf16 where the CPU runs it natively")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precisions = args.precisions or (["fp32", "bf16"] if has_native_bf16() else ["fp32"])
    ceilings = {p: gemm_ceiling(torch.float32 if p == "fp32" else torch.bfloat16) for p in precisions}
    rows = [
        bench(args.tokens, args.d_model, args.d_expert, m, k, args.repeats, precision)
        for precision in precisions for m in args.experts for k in args.top_k
    ]
    for row in rows:
        row["ours_utilisation"] = row["ours"]["gflop_per_s"] / ceilings[row["precision"]]
    out = {**header(threads=args.threads), "gemm_ceiling_gflop_per_s": ceilings,
           "peer": "transformers MixtralSparseMoeBlock at equal FLOPs per token", "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"GEMM ceiling on {args.threads} threads: " + ", ".join(f"{p} {c:.0f} GFLOP/s" for p, c in ceilings.items()))
    print(f"{'prec':>5} {'experts':>7} {'k':>2} {'ours tok/s':>11} {'mixtral tok/s':>13} {'loop tok/s':>11} "
          f"{'/mixtral':>8} {'/loop':>6} {'util':>6}")
    for r in rows:
        print(f"{r['precision']:>5} {r['n_experts']:>7} {r['top_k']:>2} {r['ours']['tokens_per_s']:>11,.0f} "
              f"{r['mixtral']['tokens_per_s']:>13,.0f} {r['per_expert_loop']['tokens_per_s']:>11,.0f} "
              f"{r['ours_over_mixtral']:>8.2f} {r['ours_over_per_expert_loop']:>6.2f} {r['ours_utilisation']:>6.1%}")


if __name__ == "__main__":
    main()
