"""MoE pretraining on Ray Train: two CPU workers hold 4 experts each (expert parallelism over
gloo inside ColossalAI's TorchDDPPlugin). One worker is killed mid-run; the group resumes from
the expert-sharded checkpoint and the loss curve, the drop rates and the validation losses equal
the uninterrupted run's. The final weights are written shard by shard (dense once, each rank's
experts in its own file) and, loaded into one process holding all 8 experts (EP=1), reproduce
the validation loss. Every step records the pre-clip norms of the local clipping (§3.4).

Runs in a fresh interpreter: the pytest process may already hold a local Ray session.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    import ray
    import torch

    from m6_pipeline.model import M6Config, M6Model
    from m6_pipeline.model.sharded_weights import INDEX, load_weights
    from m6_pipeline.pretraining.batches import validation_batches
    from m6_pipeline.training.config import OptimizerConfig, PluginConfig, PretrainJob, WorkersConfig
    from m6_pipeline.training.launch import run_pretraining
    from m6_pipeline.training.loop import evaluate
    from tests.pretraining.synthetic_shards import SPECIAL, write_synthetic_shards

    root = Path(sys.argv[1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        write_synthetic_shards(root / "shards")
        model = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8, dropout=0.1,
                                 max_positions=64, moe={"n_experts": 8, "top_k": 1, "capacity_factor": 1.25,
                                                          "router_centering": True})
        out = {}
        for run, fail_at in (("whole", None), ("killed", 13)):
            job = PretrainJob(
                name=run, model=model, steps=24, batch_size=8, eval_every=12, checkpoint_every=8,
                val_examples_per_task=32, optimizer=OptimizerConfig(lr=3e-3, warmup_steps=4),
                plugin=PluginConfig(ep_size=2),
                workers=WorkersConfig(num_workers=2, storage_path=str(root / "ray_train")),
                shard_dir=str(root / "shards"), report_dir=str(root / run), fail_at_step=fail_at)
            state, final = run_pretraining(job, SPECIAL)
            out[run] = {"history": state["history"], "validation": state["validation"],
                        "expert_load": state["expert_load"], "resumed_at": state.get("resumed_at", []),
                        "files": sorted(str(p.relative_to(final.local_path()))
                                        for p in final.local_path().rglob("*")),
                        "final": final.uri}
        single = M6Model(model)  # EP=1: every expert in one process
        # every expert and the gates' running means are in the shards
        assert load_weights(single, Path(out["whole"]["final"]) / INDEX) == ([], [])
        val = {task: validation_batches(root / "shards", task, SPECIAL, job.mix, n_examples=32, batch_size=8,
                                        rank=0, world_size=1, seed=0)
               for task in job.mix.active_tasks}
        out["single"] = evaluate(single, val, torch.bfloat16, torch.device("cpu"))
        print("RESULT " + json.dumps(out))
    finally:
        ray.shutdown()
""")


def test_moe_expert_parallel_training_resumes_exactly(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], check=False, capture_output=True,
                          text=True, timeout=600, cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    whole, killed = out["whole"], out["killed"]
    assert killed["resumed_at"] == [8]
    def untimed(history):
        return [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in history]

    assert untimed(killed["history"]) == untimed(whole["history"])  # LM and aux loss, drop rate
    assert killed["validation"] == whole["validation"]
    assert killed["expert_load"] == whole["expert_load"]
    history = whole["history"]
    assert all(0 <= h["drop_rate"] < 1 and h["aux_loss"] > 0 for h in history)
    assert any(h["drop_rate"] > 0 for h in history)  # c = 1.25 on 8 experts: capacity does bite
    load = whole["expert_load"][-1]
    assert len(load["share"]) == 1 and len(load["share"][0]) == 8  # one MoE layer of 8 experts
    assert abs(sum(load["share"][0]) - 1) < 1e-3
    files = set(whole["files"])
    assert {"experts/ep-000-of-002.safetensors", "experts/ep-001-of-002.safetensors",
            "optimizer-ranks/rank-00000.pt", "optimizer-ranks/rank-00001.pt", "model.safetensors.index.json",
            "model-dense.safetensors", "model-experts-00000-00004.safetensors",
            "model-experts-00004-00008.safetensors"} <= files
    assert "model.safetensors" not in files  # no host gathers every expert
    assert all(h["grad_norm"] > 0 and h["expert_grad_norm"] > 0 for h in history)
    first, last = whole["validation"][0], whole["validation"][-1]
    for task, loss in last.items():
        if task != "step":
            assert loss < 0.8 * first[task], (task, first[task], loss)
            # the gathered single-file model (EP=1) scores what the 2 expert-parallel ranks scored
            assert abs(out["single"][task] - loss) < 2e-3 * loss, (task, out["single"][task], loss)
