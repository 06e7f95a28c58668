"""Ray Train + ColossalAI on a cluster joined by address (conf/cluster's path): two CPU workers
on a two-node loopback cluster train M6 with TorchDDPPlugin; one worker is killed mid-run, the
worker group restarts from the last Booster checkpoint, and the loss curve equals the
uninterrupted run's step for step. The validation loss of every task falls. Re-running a
finished job returns its final checkpoint without training again.

Runs in a fresh interpreter: the pytest process may already hold a local Ray session.
"""

import json
import os
import subprocess
import sys
import textwrap

import yaml

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from types import SimpleNamespace

    import ray
    from ray.cluster_utils import Cluster

    from m6_pipeline.hooks import RayHook
    from m6_pipeline.model import M6Config
    from m6_pipeline.training.config import OptimizerConfig, PretrainJob, WorkersConfig
    from m6_pipeline.training.launch import run_pretraining
    from tests.pretraining.synthetic_shards import SPECIAL, write_synthetic_shards

    root = Path(sys.argv[1])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        conf = json.loads(sys.argv[2])
        conf["address"] = cluster.address  # conf/cluster/ray.yml, pointed at this test's cluster
        conf.pop("auth_mode", None)  # cluster_utils starts its nodes with Ray's default auth
        RayHook().after_context_created(SimpleNamespace(config_loader={"ray": conf}))
        write_synthetic_shards(root / "shards")
        model = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8,
                                 dropout=0.1, max_positions=64)
        out = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}
        # "again" re-runs the finished "whole" job: it finds its checkpoints and trains nothing
        for run, fail_at in (("whole", None), ("killed", 13), ("again", None)):
            job = PretrainJob(
                name="whole" if run == "again" else run, model=model, steps=24, batch_size=8,
                eval_every=12, checkpoint_every=8,
                val_examples_per_task=32, optimizer=OptimizerConfig(lr=3e-3, warmup_steps=4),
                workers=WorkersConfig(num_workers=2, storage_path=str(root / "ray_train")),
                shard_dir=str(root / "shards"), report_dir=str(root / run), fail_at_step=fail_at)
            state, final = run_pretraining(job, SPECIAL)
            out[run] = {"losses": [h["loss"] for h in state["history"]],
                        "steps": [h["step"] for h in state["history"]],
                        "validation": state["validation"], "resumed_at": state.get("resumed_at", []),
                        "files": sorted(c.name for c in final.children()), "final": final.uri}
        print("RESULT " + json.dumps(out))
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


def test_killed_worker_resumes_from_checkpoint_with_the_same_loss_curve(tmp_path):
    conf = yaml.safe_load((ROOT / "conf/cluster/ray.yml").read_text())
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), json.dumps(conf)],
                          check=False, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["nodes"] == 2
    whole, killed = out["whole"], out["killed"]
    assert (tmp_path / "killed" / ".failure-injected-killed").exists(), proc.stderr[-3000:]
    assert whole["resumed_at"] == [] and killed["resumed_at"] == [8]  # restarted from step 8
    assert killed["steps"] == list(range(24))
    assert killed["losses"] == whole["losses"]  # dropout, data and masks are functions of the step
    assert killed["validation"] == whole["validation"]
    assert (tmp_path / "killed" / ".failure-injected-killed").exists()
    again = out["again"]  # a restarted kedro run of a finished job: same checkpoint, no steps
    assert again["final"] == whole["final"] and again["losses"] == whole["losses"]
    first, last = whole["validation"][0], whole["validation"][-1]
    for task in ("text_denoising", "language_modelling", "image_to_text", "multimodality_to_text"):
        assert last[task] < 0.8 * first[task], (task, first[task], last[task])
    assert {"model.safetensors", "train_state.json", "model", "optimizer.bin", "lr_scheduler.pt", "COMPLETE"} <= set(
        whole["files"])
