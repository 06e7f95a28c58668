"""The optimizer each plugin can step with, and the idle patch projection under Gemini."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens, build_example, collate
from m6_pipeline.training.config import OptimizerConfig
from m6_pipeline.training.optimizers import make_optimizer, optimizer_class
from m6_pipeline.training.precision import MasterWeightAdamW

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)


def tiny() -> M6Model:
    config = M6Config.of_size("tiny", vocab_size=50, n_patches=4, d_patch_feature=8, dropout=0.0, max_positions=64)
    return M6Model(config, seed=0)


def text_batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    return collate([build_example("language_modelling", list(rng.integers(10, 50, 20)), SPECIAL, rng)
                    for _ in range(4)], SPECIAL.pad)


def test_gemini_gets_an_optimizer_of_the_kinds_it_accepts():
    from colossalai.zero.gemini.gemini_optimizer import _AVAIL_OPTIM_LIST

    assert optimizer_class("gemini") in _AVAIL_OPTIM_LIST
    for plugin in ("torch_ddp", "low_level_zero", "hybrid_parallel", "moe_hybrid_parallel"):
        assert optimizer_class(plugin) is torch.optim.AdamW


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_torch_plugins_get_fused_adamw(precision):
    optimizer = make_optimizer(tiny(), OptimizerConfig(lr=1e-3), plugin="torch_ddp", precision=precision)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["fused"]
    assert optimizer.defaults["lr"] == 1e-3


def test_bf16_master_casts_the_model_and_keeps_fp32_masters():
    model = tiny()
    optimizer = make_optimizer(model, OptimizerConfig(lr=1e-3), plugin="torch_ddp", precision="bf16-master")
    assert isinstance(optimizer, MasterWeightAdamW)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {m.dtype for m in optimizer.masters} == {torch.float32}


@pytest.mark.parametrize("idle_gets_gradient", [False, True])
def test_text_only_step_leaves_the_patch_projection_idle_unless_gemini_needs_it(idle_gets_gradient):
    model = tiny().train()
    model.embeddings.idle_patch_projection_gets_gradient = idle_gets_gradient
    reference = tiny().train()
    batch = text_batch()
    loss = model(**batch)
    loss.backward()
    assert torch.equal(loss.detach(), reference(**batch).detach())  # the loss is unchanged
    grad = model.embeddings.patch_projection.weight.grad
    if idle_gets_gradient:
        assert grad is not None and not grad.any()
    else:
        assert grad is None
