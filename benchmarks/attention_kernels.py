"""SDPA's CPU kernels at M6's attention shapes: flash against math, forward + backward.

    .venv/bin/python benchmarks/attention_kernels.py [--batch 16 --heads 4 --seq 128 --head-dim 64]

`m6_pipeline.model.blocks.attention_backend` picks the math kernel on CPU in bf16 because of
what this measures. Both kernels run in interleaved repeats (flash, math, flash, ...) with the
prefix-LM mask M6 trains with (half the sequence a bidirectional prefix); the error of each
against the fp32 math kernel is reported for the output and the query gradient.
Writes benchmarks/results/attention_kernels.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "attention_kernels.json"
KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}


def prefix_mask(batch: int, seq: int) -> torch.Tensor:
    from m6_pipeline.model.masking import prefix_lm_mask

    lengths = torch.full((batch,), seq)
    return prefix_lm_mask(lengths // 2, lengths, seq)


def fwd_bwd(q, k, v, mask, grad, kernel):
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    with sdpa_kernel(kernel):
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    y.backward(grad.to(y.dtype))
    return y.detach().float(), q.grad.float()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> None:
    from record import header

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="fwd+bwd calls per timed repeat")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (args.batch, args.heads, args.seq, args.head_dim)
    q, k, v, grad = (torch.randn(shape) for _ in range(4))
    mask = prefix_mask(args.batch, args.seq)
    reference = fwd_bwd(q, k, v, mask, grad, SDPBackend.MATH)
    rows = {}
    for dtype in (torch.bfloat16, torch.float32):
        inputs = [t.to(dtype) for t in (q, k, v)]
        times: dict[str, list[float]] = {name: [] for name in KERNELS}
        for name, kernel in KERNELS.items():  # warm-up
            fwd_bwd(*inputs, mask, grad, kernel)
        for _ in range(args.repeats):
            for name, kernel in KERNELS.items():
                start = time.perf_counter()
                for _ in range(args.calls):
                    fwd_bwd(*inputs, mask, grad, kernel)
                times[name].append((time.perf_counter() - start) / args.calls * 1e3)
        label = str(dtype).removeprefix("torch.")
        rows[label] = {}
        for name, kernel in KERNELS.items():
            out, dq = fwd_bwd(*inputs, mask, grad, kernel)
            rows[label][name] = {
                "ms_median": statistics.median(times[name]),
                "output_error": relative_error(out, reference[0]),
                "query_grad_error": relative_error(dq, reference[1]),
            }
        rows[label]["flash_over_math"] = rows[label]["flash"]["ms_median"] / rows[label]["math"]["ms_median"]
    result = {**header(), "shape": dict(zip(["batch", "heads", "seq", "head_dim"], shape)),
              "threads": args.threads, "torch": torch.__version__, "mask": "prefix-LM, prefix = seq/2",
              "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"{'dtype':<10} {'kernel':<6} {'ms fwd+bwd':>10} {'out err':>9} {'dq err':>9}")
    for label, row in rows.items():
        for name in KERNELS:
            r = row[name]
            print(f"{label:<10} {name:<6} {r['ms_median']:>10.2f} {r['output_error']:>9.2e} {r['query_grad_error']:>9.2e}")
        print(f"{label:<10} flash / math time: {row['flash_over_math']:.2f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
