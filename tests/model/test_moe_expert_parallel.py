"""Expert parallelism over gloo: the MoE layer with its experts sharded over 2 processes gives
the outputs and gradients of the same layer holding every expert (EP=1), drops included."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from m6_pipeline.model.moe import MoEConfig

sys.path.insert(0, str(Path(__file__).parent))
from expert_parallel_worker import make_layer, rank_inputs  # noqa: E402

WORKER = Path(__file__).parent / "expert_parallel_worker.py"


def run_expert_parallel(config: MoEConfig, tmp_path: Path) -> list[dict]:
    store = tmp_path / "store"
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), "--rank", str(r), "--store", str(store),
                          "--out", str(tmp_path / f"rank{r}.pt"), "--config", config.model_dump_json()])
        for r in range(2)
    ]
    for r, p in enumerate(procs):
        code = p.wait(timeout=240)
        saved = "after" if (tmp_path / f"rank{r}.pt").exists() else "before"
        assert code == 0, f"rank {r} exited with {code}, {saved} saving its results"
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]


def run_single(config: MoEConfig) -> tuple[list[dict], torch.nn.Module]:
    layer = make_layer(config, None)
    results, total = [], 0
    for r in range(2):  # each rank's batch routed on its own: capacity is per source batch
        x, token_mask, upstream = rank_inputs(r)
        x.requires_grad_()
        out = layer(x, token_mask)
        total = total + (out * upstream).sum()
        results.append({"out": out, "x": x, "n_dropped": layer.statistics.n_dropped})
    total.backward()
    return results, layer


@pytest.mark.parametrize("top_k", [1, 2])
def test_ep2_over_gloo_equals_ep1(top_k, tmp_path):
    config = MoEConfig(n_experts=4, top_k=top_k, capacity_factor=0.75, min_capacity=1)
    ranks = run_expert_parallel(config, tmp_path)
    single, layer = run_single(config)
    assert sum(r["n_dropped"] for r in ranks) > 0  # capacity bites: dropping is exercised
    for r in range(2):
        assert ranks[r]["n_dropped"] == single[r]["n_dropped"]
        assert torch.allclose(ranks[r]["out"], single[r]["out"].detach(), atol=1e-5)
        assert torch.allclose(ranks[r]["x_grad"], single[r]["x"].grad, atol=1e-5)
        for sharded, full in zip(ranks[r]["expert_grads"], layer.expert_parameters()):
            assert torch.allclose(sharded, full.grad[2 * r : 2 * r + 2], atol=1e-5)
    # the gate is replicated: each rank's gradient is its batch's share of the total
    assert torch.allclose(ranks[0]["gate_grad"] + ranks[1]["gate_grad"], layer.gate.weight.grad, atol=1e-5)


def test_bf16_communication_stays_close(tmp_path):
    config = MoEConfig(n_experts=4, top_k=2, capacity_factor=2.0, min_capacity=1, comm_dtype="bf16")
    ranks = run_expert_parallel(config, tmp_path)
    single, _ = run_single(config)
    for r in range(2):
        reference = single[r]["out"].detach()
        error = (ranks[r]["out"] - reference).norm() / reference.norm()
        assert 0 < error < 2e-2  # rounded on the wire, not lost
