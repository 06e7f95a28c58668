"""The output layer and its cross entropy in one pass, chunked over tokens.

The usual path (`F.cross_entropy(hidden @ W.T)`) writes the whole [tokens, vocabulary] logit
matrix, casts it to fp32, runs log-softmax over it in the forward and again in the backward, and
keeps it alive between the two: at M6's laptop shape that is the largest tensor of a step, and
its element-wise passes cost as much as a transformer block. Here the loss is the last node of
the graph, so its gradient is known in the forward (softmax minus the one-hot target): for
each chunk of tokens the logits are made, reduced to the loss, turned into their gradient and
multiplied back into the gradients of the hidden states and of W while still in cache. The
backward only scales those by the incoming gradient. One exponential per logit instead of
two, no logit matrix kept (the idea of Liger Kernel's and Apple's "Cut Cross-Entropy" fused
losses, written here in plain PyTorch for CPU and any device).

Precision: matrix products in the compute dtype (bf16 under autocast), the log-sum-exp and the
softmax in fp32, W's gradient accumulated over chunks in fp32. Against an fp64 reference its
gradients are as close as the usual bf16 path's (tests/model/test_linear_cross_entropy.py).
"""

from __future__ import annotations

import torch

# One chunk's fp32 logits within a server CPU's last-level cache (32 MiB here), and chunks tall
# enough for efficient matrix products: at vocabulary 6000 on 2 threads a step is 5-8% faster
# with 16 MiB chunks (700 rows) than with 2-6 MiB ones, and 8% slower with one 48 MiB chunk.
CPU_CHUNK_BYTES = 16 * 2**20
DEVICE_CHUNK_BYTES = 2**30  # on accelerators the chunk only bounds memory


def chunk_rows(vocab: int, device_type: str) -> int:
    """Tokens per chunk: a chunk's fp32 logits fit the budget of the device type ("cpu",
    "cuda", ...)."""
    budget = CPU_CHUNK_BYTES if device_type == "cpu" else DEVICE_CHUNK_BYTES
    return max(32, budget // (4 * vocab))


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, labels, dtype, rows):  # noqa: ANN001, ANN205 (autograd API)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            want_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
            accumulate = torch.promote_types(dtype, torch.float32)  # fp32, or fp64 for fp64 inputs
            total = torch.zeros((), dtype=accumulate, device=hidden.device)
            grad_hidden = torch.empty(hidden.shape, dtype=dtype, device=hidden.device) if want_grad else None
            grad_weight = None  # the first chunk's product, then a running fp32 sum
            for start in range(0, hidden.shape[0], rows):
                h = hidden[start : start + rows].to(dtype)
                y = labels[start : start + rows]
                # softmax by hand: PyTorch's CPU softmax/log_softmax kernels take 3-4x as long
                # as these in-place passes at [256, 6000] on 2 threads
                logits = (h @ w.T).to(accumulate)
                peak = logits.amax(dim=-1, keepdim=True)
                target = logits.gather(1, y[:, None])
                exponentials = logits.sub_(peak).exp_()
                normaliser = exponentials.sum(dim=-1, keepdim=True)
                total += (peak + normaliser.log() - target).sum()
                if want_grad:
                    probabilities = exponentials.div_(normaliser)
                    probabilities[torch.arange(len(y), device=y.device), y] -= 1.0
                    grad_logits = probabilities.to(dtype)
                    grad_hidden[start : start + rows] = grad_logits @ w
                    chunk_grad_weight = (grad_logits.T @ h).to(accumulate)
                    if grad_weight is None:
                        grad_weight = chunk_grad_weight
                    else:
                        grad_weight += chunk_grad_weight
        if want_grad and grad_weight is None:  # no tokens: every gradient is zero
            grad_weight = torch.zeros(weight.shape, dtype=accumulate, device=weight.device)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # noqa: ANN001, ANN205
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.dtypes
        return (
            (grad_hidden * grad_total).to(hidden_dtype) if ctx.needs_input_grad[0] else None,
            (grad_weight * grad_total).to(weight_dtype) if ctx.needs_input_grad[1] else None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, rows: int | None = None
) -> torch.Tensor:
    """Summed cross entropy of `hidden @ weight.T` against `labels` (nats; an fp32 scalar, fp64
    for fp64 inputs).

    hidden: [tokens, d]; weight: [classes, d] (an output layer without bias); labels: [tokens],
    every one a class index (drop ignored positions first). Under autocast the products run in
    the autocast dtype, as `F.linear` would; `rows` overrides the tokens per chunk."""
    if hidden.ndim != 2 or labels.shape != hidden.shape[:1] or weight.shape[1] != hidden.shape[1]:
        raise ValueError(
            f"expected hidden [tokens, d], weight [classes, d], labels [tokens]; got "
            f"{tuple(hidden.shape)}, {tuple(weight.shape)}, {tuple(labels.shape)}"
        )
    if labels.numel():
        low, high = (int(v) for v in torch.aminmax(labels))  # one pass, one sync
        if low < 0 or high >= weight.shape[0]:
            raise ValueError(
                f"labels must lie in [0, {weight.shape[0]}) for this output layer; got "
                f"{low}..{high} (drop ignored positions before the loss)"
            )
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    rows = rows or chunk_rows(weight.shape[0], device)
    return _LinearCrossEntropy.apply(hidden, weight, labels, dtype, rows)
