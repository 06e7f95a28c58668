"""Clipping and the expert-sharded export over gloo, with ColossalAI's TorchDDPPlugin as the loop
uses it (tests/training/ddp_export_worker.py runs the ranks).

The pre-clip norms each step records equal norms computed by hand from one process holding the
whole model (EP=1) on the ranks' batches, and after clipping no norm exceeds max_norm: one rank
for a dense model; two ranks for an MoE model with its experts sharded (the paper's local
clipping: the dense gradients apart from each rank's experts). The MoE model trained at EP=2 is
exported shard by shard and loaded at EP=2 and EP=1, and re-exported at EP=4 and loaded at EP=2:
the logits equal the trained model's."""

import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from ddp_export_worker import MAX_NORM, N_EXPERTS, batch, norm, tiny  # noqa: E402

from m6_pipeline.model import M6Model  # noqa: E402

WORKER = Path(__file__).parent / "ddp_export_worker.py"


def run_ranks(world: int, moe: bool, out: Path) -> list[dict]:
    out.mkdir()
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), "--rank", str(r), "--world", str(world),
                          "--store", str(out / "store"), "--out", str(out), *(["--moe"] if moe else [])],
                         stderr=subprocess.PIPE, text=True)
        for r in range(world)
    ]
    for r, p in enumerate(procs):
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, f"rank {r} exited with {p.returncode}:\n{err[-3000:]}"
    return [torch.load(out / f"rank{r}.pt") for r in range(world)]


def reference_gradients(moe: bool, world: int) -> M6Model:
    """One process, every expert: the gradient of the mean of the ranks' losses (what DDP averages)."""
    torch.manual_seed(0)
    model = M6Model(tiny(moe))
    (sum(model(**batch(r, step=0)) for r in range(world)) / world).backward()
    return model


def test_torch_ddp_logs_the_pre_clip_norm_and_clips_to_max_norm(tmp_path):
    [rank] = run_ranks(1, moe=False, out=tmp_path / "dense")
    reference = norm(list(reference_gradients(moe=False, world=1).parameters()))
    first = rank["records"][0]
    assert reference > 2 * MAX_NORM  # clipping bites
    assert abs(first["grad_norm"] - reference) < 1e-5 * reference
    assert all(r["clipped_grad_norm"] <= MAX_NORM * (1 + 1e-5) for r in rank["records"])
    assert all(r["grad_norm"] > MAX_NORM for r in rank["records"])


def test_expert_parallel_clips_locally_and_its_export_reshards(tmp_path):
    ranks = run_ranks(2, moe=True, out=tmp_path / "moe")
    model = reference_gradients(moe=True, world=2)
    experts = model.expert_parameters()
    dense = [p for p in model.parameters() if id(p) not in {id(e) for e in experts}]
    half = N_EXPERTS // 2
    for r, rank in enumerate(ranks):
        first = rank["records"][0]
        own = torch.sqrt(sum((p.grad[r * half : (r + 1) * half].double() ** 2).sum() for p in experts))
        assert abs(first["grad_norm"] - norm(dense)) < 1e-5 * norm(dense)  # dense: every rank's mean
        assert abs(first["expert_grad_norm"] - float(own)) < 1e-5 * float(own)  # only this rank's experts
        assert first["grad_norm"] > MAX_NORM and first["expert_grad_norm"] > MAX_NORM  # clipping bites
        for record in rank["records"]:  # a rank whose experts got no token later has norm 0
            assert record["clipped_grad_norm"] <= MAX_NORM * (1 + 1e-5)
            assert record["clipped_expert_grad_norm"] <= MAX_NORM * (1 + 1e-5)
        trained = rank["trained"]
        assert torch.equal(rank["ep2"], trained)  # the same shards, the same ranks
        assert torch.allclose(rank["ep1"], trained, atol=1e-5)  # every expert in one process
        assert torch.equal(rank["ep4_to_ep2"], trained)  # 4 shards concatenated back into 2
    assert ranks[0]["files"] == sorted([
        "m6_config.json", "model_card.json", "model.safetensors.index.json", "model-dense.safetensors",
        *(f"model-experts-{a:05d}-{a + 2:05d}.safetensors" for a in range(0, N_EXPERTS, 2)),
    ])
