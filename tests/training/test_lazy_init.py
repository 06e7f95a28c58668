"""Lazy initialisation (training/lazy_init.py): the sharding plugins get a model of LazyTensors
whose materialised weights equal the eager ones; the 10B model is prepared in well under 1 GiB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from m6_pipeline.model.config import PAPER_PARAMS, M6Config
from m6_pipeline.training.lazy_init import build_model, builds_lazily, materialise

pytest.importorskip("colossalai")
from colossalai.lazy import LazyTensor  # noqa: E402

TINY = M6Config.of_size("tiny", vocab_size=300, d_patch_feature=32, n_image_codes=16)
TINY_MOE = M6Config.of_size("tiny", vocab_size=300, d_patch_feature=32, moe={"n_experts": 4})


@pytest.mark.parametrize("config", [TINY, TINY_MOE], ids=["dense_with_codes", "moe"])
def test_lazy_model_materialises_to_the_eager_weights(config):
    eager = build_model(config, "torch_ddp", seed=11)
    torch.manual_seed(123)  # the global generator's state plays no part
    lazy = build_model(config, "gemini", seed=11)
    assert all(isinstance(p, LazyTensor) for p in lazy.parameters())
    materialise(lazy)
    assert not any(isinstance(p, LazyTensor) for p in lazy.parameters())
    assert lazy.output_weight is lazy.embeddings.word.weight  # the tied output layer stays tied
    eager_state, lazy_state = eager.state_dict(), lazy.state_dict()
    assert eager_state.keys() == lazy_state.keys()
    for name, tensor in eager_state.items():
        assert torch.equal(tensor, lazy_state[name]), name
    # really initialised: N(0, 0.02) weights, not empty storage
    assert eager.embeddings.word.weight.std().item() == pytest.approx(0.02, rel=0.1)
    if config.moe is not None:
        assert eager.moe_layers[0].w1.std().item() == pytest.approx(0.02, rel=0.1)


def test_the_seed_sets_the_weights_and_ddp_builds_eagerly():
    assert not builds_lazily("torch_ddp") and builds_lazily("low_level_zero")
    a = build_model(TINY, "torch_ddp", seed=1)
    b = build_model(TINY, "torch_ddp", seed=2)
    assert not any(isinstance(p, LazyTensor) for p in a.parameters())
    assert not torch.equal(a.blocks[0].attention.qkv.weight, b.blocks[0].attention.qkv.weight)
    # residual projections keep GPT-2's smaller scale: 0.02 / sqrt(2 n_layers)
    proj = build_model(M6Config.of_size("tiny", d_model=256, n_heads=4), "torch_ddp", seed=1)
    assert proj.blocks[0].attention.proj.weight.std().item() == pytest.approx(0.01, rel=0.1)


PREPARE_10B = textwrap.dedent(
    """
    import json, warnings
    warnings.filterwarnings("ignore")
    import torch
    from colossalai.lazy import LazyTensor
    from m6_pipeline.model.config import M6Config
    from m6_pipeline.training.lazy_init import build_model

    # conf/base/parameters_pretrain.yml, pretrain_10b's model
    config = M6Config.of_size("10b", max_positions=512, dropout=0.1, activation_checkpointing=True)
    model = build_model(config, "gemini", seed=0)
    # an optimizer over the lazy parameters (the loop's HybridAdam needs ColossalAI's kernels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=8e-5, fused=True)
    # VmHWM: this process's peak RSS since exec (ru_maxrss would carry the parent pytest's over exec)
    peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({
        "max_rss_gib": peak_kib / 2**20,
        "n_params": sum(p.numel() for p in model.parameters()),
        "all_lazy": all(isinstance(p, LazyTensor) for p in model.parameters()),
    }))
    """
)


def test_preparing_the_10b_model_lazily_stays_under_1_gib_of_rss():
    """What a Gemini worker holds before boost: the 10B model and its optimizer, lazy. Eager,
    the same model is 40 GB of fp32."""
    done = subprocess.run(
        [sys.executable, "-c", PREPARE_10B], capture_output=True, text=True, timeout=600, check=True
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["n_params"] == pytest.approx(PAPER_PARAMS["10b"], rel=0.03)
    assert measured["all_lazy"]
    assert measured["max_rss_gib"] < 1.0, measured
