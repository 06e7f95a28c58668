"""Tensor parallelism over gloo: M6 sharded by `M6Policy` over 2 processes (TP=2) gives the
loss, gradients and one optimizer step of the same model on one process (TP=1); and
`make_plugin` refuses a tp_size the model's widths do not split into."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from m6_pipeline.model import M6Config
from m6_pipeline.training.config import OptimizerConfig, PluginConfig
from m6_pipeline.training.plugins import make_plugin

sys.path.insert(0, str(Path(__file__).parent))
from tensor_parallel_worker import make_model, train_step  # noqa: E402

WORKER = Path(__file__).parent / "tensor_parallel_worker.py"
TP = 2
# what the policy shards, and along which dimension of the full tensor (the rest is replicated)
SHARDED = {
    "blocks.0.attention.qkv.weight": "qkv", "blocks.0.attention.qkv.bias": "qkv",
    "blocks.0.attention.proj.weight": 1,
    "blocks.0.ffn.fc.weight": 0, "blocks.0.ffn.fc.bias": 0,
    "blocks.0.ffn.proj.weight": 1,
    # block 1 is an MoE block: its attention is sharded, its experts and gate are not
    "blocks.1.attention.qkv.weight": "qkv", "blocks.1.attention.qkv.bias": "qkv",
    "blocks.1.attention.proj.weight": 1,
}


def shard_of(name: str, full: torch.Tensor, rank: int) -> torch.Tensor:
    """Rank `rank`'s part of a TP=1 tensor. The fused qkv rows are (3, heads, head_dim): a rank
    holds its heads' rows of q, of k and of v, not a contiguous third."""
    how = SHARDED.get(name)
    if how is None:
        return full
    if how == "qkv":
        return torch.cat([part.chunk(TP, dim=0)[rank] for part in full.chunk(3, dim=0)])
    return full.chunk(TP, dim=how)[rank]


def run_tensor_parallel(tmp_path: Path) -> list[dict]:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), "--rank", str(r), "--store", str(store),
                          "--out", str(tmp_path / f"rank{r}.pt")])
        for r in range(TP)
    ]
    for r, p in enumerate(procs):
        code = p.wait(timeout=240)
        saved = "after" if (tmp_path / f"rank{r}.pt").exists() else "before"
        assert code == 0, f"rank {r} exited with {code}, {saved} saving its results"
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(TP)]


def test_tp2_over_gloo_equals_tp1(tmp_path):
    ranks = run_tensor_parallel(tmp_path)
    single = train_step(make_model())
    for r, result in enumerate(ranks):
        assert result["qkv_class"] == "FusedLinear1D_Col"
        assert result["n_heads"] == [2, 2]  # 4 heads over 2 ranks
        full = single["grads"]
        sharded = {name for name, g in result["grads"].items() if g.shape != full[name].shape}
        assert sharded == set(SHARDED)  # embeddings, norms, MoE experts and gate stay whole
        assert torch.allclose(result["loss"], single["loss"], rtol=0, atol=1e-5)
        for name, grad in result["grads"].items():
            expected = shard_of(name, single["grads"][name], r)
            assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-6), name
        for name, weight in result["weights"].items():  # one SGD step later
            expected = shard_of(name, single["weights"][name], r)
            assert torch.allclose(weight, expected, rtol=1e-4, atol=1e-6), name
        assert torch.allclose(result["loss_after"], single["loss_after"], rtol=0, atol=1e-5)
    assert single["loss_after"] < single["loss"] - 0.01  # the step changed something to compare


def tiny(**overrides) -> M6Config:
    return M6Config.of_size("tiny", **{"vocab_size": 50, "n_patches": 4, "d_patch_feature": 8,
                                       "max_positions": 64, **overrides})


@pytest.mark.parametrize(
    ("tp_size", "model", "named"),
    [(3, tiny(), "n_heads=4"), (8, tiny(), "n_heads=4"), (4, tiny(d_ff=66), "ffn_width (d_ff)=66")],
)
def test_make_plugin_refuses_a_tp_size_the_model_does_not_split_into(tp_size, model, named):
    """Refused before ColossalAI builds anything (the plugin would need CUDA and process
    groups), with the dimension named and what to do."""
    config = PluginConfig(name="hybrid_parallel", tp_size=tp_size, zero_stage=1)
    message = rf"tp_size={tp_size} does not divide .*{re.escape(named)}.*pick a tp_size"
    with pytest.raises(ValueError, match=message):
        make_plugin(config, use_gpu=True, precision="bf16", model=model, optimizer=OptimizerConfig())


def test_make_plugin_refuses_tp_outside_hybrid_parallel():
    config = PluginConfig(name="gemini", tp_size=2)
    with pytest.raises(ValueError, match="needs plugin.name: hybrid_parallel"):
        make_plugin(config, use_gpu=True, precision="bf16", model=tiny(), optimizer=OptimizerConfig())


def test_policy_without_tensor_parallelism_leaves_the_model_as_is():
    """hybrid_parallel at tp_size 1 (and moe_hybrid_parallel) still runs ShardFormer, which
    finds no built-in policy for M6: M6Policy is passed and must change nothing."""
    from colossalai.shardformer import ShardConfig, ShardFormer

    from m6_pipeline.training.tensor_parallel import M6Policy

    model = make_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    shardformer = ShardFormer(ShardConfig(enable_tensor_parallelism=False))
    sharded, _ = shardformer.optimize(model, policy=M6Policy())
    after = dict(sharded.named_parameters())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert type(sharded.blocks[0].attention.qkv) is torch.nn.Linear
