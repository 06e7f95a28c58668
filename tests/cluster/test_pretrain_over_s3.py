"""Pretraining on a 2-node loopback Ray cluster (conf/cluster: joined by address, code shipped,
versions checked) whose only shared storage is an S3 server: Ray Train + ColossalAI's
TorchDDPPlugin on two CPU workers read the token shards from the bucket and write checkpoints to
it; a worker is killed mid-run and the run resumes from the bucket with the same loss curve and
validation losses step for step; every task's validation loss falls; re-running the finished job
returns its checkpoint without training; the model exported to the bucket loads in a fresh process. The driver runs in a directory of its own, not the repository's, and no
checkpoint or shard is left on the local disk.

Both nodes are on this machine (that is what a loopback cluster is), so the test cannot stop a
worker from opening a local path; instead every path the workers are given is a URI, and the test
checks that nothing the run keeps was written outside the bucket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from m6_pipeline.storage import location
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster

SCRIPT = textwrap.dedent("""
    import json, os, sys, tempfile
    from pathlib import Path

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from m6_pipeline.cluster_env import check_node_versions, library_versions
    from m6_pipeline.model import M6Config
    from m6_pipeline.model.pretrained import export_pretrained, fetch_weights
    from m6_pipeline.storage import location
    from m6_pipeline.training.config import OptimizerConfig, PretrainJob, WorkersConfig
    from m6_pipeline.training.launch import run_pretraining
    from tests.cluster.loopback import joined_cluster
    from tests.pretraining.synthetic_shards import SPECIAL, write_synthetic_shards

    bucket, reports, conf, project = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
    # ships the code (py_modules) and checks every node's versions on joining
    with joined_cluster(conf, project):
        @ray.remote(num_cpus=1)
        def where() -> dict:
            import m6_pipeline
            return {"cwd": os.getcwd(), "code": m6_pipeline.__file__}

        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        seen = ray.get([where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
                        for n in nodes])
        try:  # a node whose torch differs from the driver's stops the run
            check_node_versions({**library_versions(), "torch": "0.0.1"})
            refused = None
        except RuntimeError as error:
            refused = str(error)
        # the shards are written here, uploaded, and the local copy removed before training
        with tempfile.TemporaryDirectory() as staging:
            write_synthetic_shards(Path(staging) / "shards")
            location(bucket + "/shards").upload_from(Path(staging) / "shards")
        model = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8,
                                 dropout=0.1, max_positions=64)
        out = {"nodes": len(nodes), "workers": seen, "driver_cwd": os.getcwd(), "refused": refused}
        # "again" re-runs the finished "whole" job: it finds its checkpoints in the bucket and trains nothing
        for run, fail_at in (("whole", None), ("killed", 13), ("again", None)):
            job = PretrainJob(
                name="whole" if run == "again" else run, model=model, steps=24, batch_size=8, eval_every=12, checkpoint_every=8,
                val_examples_per_task=32, optimizer=OptimizerConfig(lr=3e-3, warmup_steps=4),
                workers=WorkersConfig(num_workers=2, storage_path=bucket + "/ray_train"),
                shard_dir=bucket + "/shards", report_dir=str(reports / run), fail_at_step=fail_at)
            state, final = run_pretraining(job, SPECIAL)
            out[run] = {"losses": [h["loss"] for h in state["history"]], "validation": state["validation"],
                        "resumed_at": state.get("resumed_at", []), "final": final.uri,
                        "files": sorted(c.name for c in final.children())}
        with tempfile.TemporaryDirectory() as staging:
            card = export_pretrained(fetch_weights(location(out["killed"]["final"]), Path(staging)), model,
                                     {"run": "killed"}, bucket + "/models/killed")
        out["card"] = card
        print("RESULT " + json.dumps(out))
""")

LOAD = """
import json, sys, torch
from m6_pipeline.model.pretrained import load_pretrained
model, card = load_pretrained(sys.argv[1])
print(json.dumps({"card": card, "parameters": sum(p.numel() for p in model.parameters())}))
"""


def test_pretraining_reads_and_resumes_from_the_bucket_and_exports_to_it(bucket, tmp_path):
    driver = tmp_path / "driver"
    driver.mkdir()
    (driver / "train.py").write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    conf = yaml.safe_load((ROOT / "conf/cluster/ray.yml").read_text())
    proc = subprocess.run([sys.executable, "train.py", bucket, str(tmp_path / "reports"), json.dumps(conf), str(ROOT)],
                          check=False,
                          capture_output=True, text=True, timeout=600, cwd=driver, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])

    assert out["nodes"] == 2 and out["driver_cwd"] == str(driver)
    for worker in out["workers"]:  # the shipped package, not the checkout's
        assert "runtime_resources" in worker["code"] and not worker["code"].startswith(str(ROOT)), worker
    assert "torch" in out["refused"] and "(the driver has 0.0.1)" in out["refused"]
    whole, killed = out["whole"], out["killed"]
    assert whole["resumed_at"] == [] and killed["resumed_at"] == [8]  # from the bucket's step-8
    assert killed["losses"] == whole["losses"] and killed["validation"] == whole["validation"]
    assert killed["final"].startswith(f"{bucket}/ray_train/killed-") and killed["final"].endswith("step-0000024")
    assert {"model.safetensors", "train_state.json", "model", "optimizer.bin", "lr_scheduler.pt", "COMPLETE"} <= set(
        killed["files"])
    again = out["again"]  # a restarted kedro run of a finished job: the same checkpoint, no steps
    assert again["final"] == whole["final"] and again["losses"] == whole["losses"]
    first, last = whole["validation"][0], whole["validation"][-1]
    for task in ("text_denoising", "language_modelling", "image_to_text", "multimodality_to_text"):
        assert last[task] < 0.8 * first[task], (task, first[task], last[task])
    checkpoints = location(killed["final"]).parent().glob("step-*")
    # the newest two (keep_checkpoints=2); step 8, the one resumed from, may outlive the restart
    assert [c.name for c in checkpoints][-2:] == ["step-0000016", "step-0000024"]

    # nothing the run keeps landed on the local disk: only dvclive's reports and the kill marker
    kept = {p.name for p in tmp_path.rglob("*") if p.suffix in (".parquet", ".safetensors", ".bin", ".pt")}
    assert kept == set(), kept

    card = out["card"]
    assert card["model_dir"] == f"{bucket}/models/killed"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", LOAD, card["model_dir"]], capture_output=True, text=True,
                          timeout=300, cwd=elsewhere, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert loaded["card"]["run"] == "killed" and loaded["parameters"] > 0
