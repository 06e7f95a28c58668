"""The fused output layer + cross entropy gives PyTorch's loss and gradients, chunk by chunk."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.linear_cross_entropy import CPU_CHUNK_BYTES, chunk_rows, linear_cross_entropy
from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model


def _reference(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor):
    h, w = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    loss = F.cross_entropy(h @ w.T, labels, reduction="sum")
    loss.backward()
    return loss.detach(), h.grad, w.grad


def _fused(
    hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, rows: int | None, scale: float = 1.0
):
    h, w = hidden.detach().clone().requires_grad_(), weight.detach().clone().requires_grad_()
    loss = linear_cross_entropy(h, w, labels, rows=rows)
    (loss * scale).backward()
    return loss.detach(), h.grad, w.grad


@settings(max_examples=25, deadline=None)
@given(
    tokens=st.integers(0, 70),
    width=st.integers(1, 24),
    classes=st.integers(1, 50),
    rows=st.integers(1, 80),
    seed=st.integers(0, 2**16),
)
def test_equals_pytorch_cross_entropy_in_float64(tokens, width, classes, rows, seed):
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(tokens, width, generator=generator, dtype=torch.float64)
    weight = torch.randn(classes, width, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (tokens,), generator=generator)
    expected, grad_h, grad_w = _reference(hidden, weight, labels)
    loss, fused_h, fused_w = _fused(hidden, weight, labels, rows)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fused_h, grad_h, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fused_w, grad_w, rtol=1e-10, atol=1e-10)


def test_gradients_scale_with_the_incoming_gradient():
    generator = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(40, 8, generator=generator), torch.randn(30, 8, generator=generator)
    labels = torch.randint(0, 30, (40,), generator=generator)
    _, h1, w1 = _fused(hidden, weight, labels, rows=16)
    _, h3, w3 = _fused(hidden, weight, labels, rows=16, scale=3.0)
    torch.testing.assert_close(h3, 3 * h1)
    torch.testing.assert_close(w3, 3 * w1)


def test_bf16_autocast_is_as_accurate_as_the_usual_path():
    """Against an fp64 truth, the chunked bf16 gradients are within the error of
    `F.cross_entropy(linear)` under the same autocast (both round products to bf16)."""
    generator = torch.Generator().manual_seed(1)
    hidden = torch.randn(600, 64, generator=generator)
    weight = torch.randn(1000, 64, generator=generator) * 0.1
    labels = torch.randint(0, 1000, (600,), generator=generator)
    _, true_h, true_w = _reference(hidden.double(), weight.double(), labels)

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() - b).norm() / b.norm())

    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        F.cross_entropy((h @ w.T).float(), labels, reduction="sum").backward()
    usual = (relative(h.grad, true_h), relative(w.grad, true_w))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, fused_h, fused_w = _fused(hidden, weight, labels, rows=128)
    assert fused_h.dtype == fused_w.dtype == torch.float32
    assert relative(fused_h, true_h) < 1.5 * usual[0] and relative(fused_w, true_w) < 1.5 * usual[1]
    assert max(usual) < 0.02  # the comparison is between two working bf16 paths


def test_without_gradients_it_only_computes_the_loss():
    generator = torch.Generator().manual_seed(2)
    hidden, weight = torch.randn(50, 8, generator=generator), torch.randn(20, 8, generator=generator)
    labels = torch.randint(0, 20, (50,), generator=generator)
    with torch.no_grad():
        loss = linear_cross_entropy(hidden, weight, labels, rows=7)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, F.cross_entropy(hidden @ weight.T, labels, reduction="sum"))


@pytest.mark.parametrize("bad", [-1, 20])
def test_a_label_outside_the_output_layer_is_refused(bad):
    labels = torch.tensor([0, bad])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 20\)"):
        linear_cross_entropy(torch.randn(2, 8), torch.randn(20, 8), labels)


def test_chunks_are_as_tall_as_the_cache_budget_allows():
    rows = chunk_rows(6000, "cpu")
    assert rows * 6000 * 4 <= CPU_CHUNK_BYTES < (rows + 1) * 6000 * 4
    assert chunk_rows(10**7, "cpu") == 32  # never a handful of rows
    assert chunk_rows(6000, "cuda") > rows  # accelerators: memory bound only


@pytest.mark.parametrize("codes", [0, 12])
def test_m6_loss_and_tied_gradients_match_the_unfused_formula(codes):
    """M6's loss over words (tied output layer) and image codes (code output layer) equals
    F.cross_entropy over explicit logits, with the same gradients on every weight."""
    torch.manual_seed(0)
    config = M6Config.of_size("tiny", vocab_size=40, max_positions=16, n_image_codes=codes, dropout=0.0)
    model = M6Model(config).double()
    hidden = torch.randn(3, 10, config.d_model, dtype=torch.float64)
    labels = torch.randint(0, 40 + codes, (3, 10))
    labels[0, :4] = IGNORE_INDEX
    fused = model.loss(hidden, labels)
    fused.backward()
    fused_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    keep = labels != IGNORE_INDEX
    h, y = hidden[keep], labels[keep]
    logits = h @ model.output_weight.T
    if codes:
        is_code = y >= config.code_offset
        sum_words = F.cross_entropy(logits[~is_code], y[~is_code], reduction="sum")
        code_logits = model.code_head(h[is_code])
        sum_codes = F.cross_entropy(code_logits, y[is_code] - config.code_offset, reduction="sum")
        expected = (sum_words + sum_codes) / y.numel()
    else:
        expected = F.cross_entropy(logits, y)
    expected.backward()
    torch.testing.assert_close(fused.double(), expected, rtol=1e-6, atol=1e-6)
    assert set(fused_grads) == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            torch.testing.assert_close(fused_grads[name], parameter.grad, msg=name)
