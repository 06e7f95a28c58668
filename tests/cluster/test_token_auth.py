"""Token authentication (conf/cluster's `auth_mode: token`): a loopback cluster started with a
token admits the Ray hook's driver that presents it and refuses one that does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.cluster

SCRIPT = textwrap.dedent("""
    import json, os, subprocess, sys
    from types import SimpleNamespace

    # Ray reads the auth mode when it is imported: the token is in the environment first
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN"] = "m6-test-token-" + "0" * 32
    import ray
    from ray.cluster_utils import Cluster

    conf, project = json.loads(sys.argv[1]), sys.argv[2]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        conf["address"] = cluster.address
        conf["check_versions"] = False  # one node; the version check has tests of its own
        conf["ship_code"] = False
        from m6_pipeline.hooks import RayHook

        RayHook().after_context_created(SimpleNamespace(config_loader={"ray": conf}, project_path=project))

        @ray.remote(num_cpus=0)
        def hello() -> str:
            return "ran"

        admitted = ray.get(hello.remote())  # a task ran on the cluster the token opened
        ray.shutdown()
        stranger = subprocess.run(
            [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1]); print('joined')", cluster.address],
            capture_output=True, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"} | {"RAY_AUTH_MODE": "token"})
        print("RESULT " + json.dumps({"admitted": admitted, "stranger_rc": stranger.returncode,
                                      "stranger_joined": "joined" in stranger.stdout,
                                      "stranger_said": stranger.stderr[-1500:]}))
    finally:
        ray.shutdown()
        cluster.shutdown()
""")


def test_the_cluster_admits_the_token_and_refuses_a_driver_without_it(tmp_path):
    conf = yaml.safe_load((ROOT / "conf/cluster/ray.yml").read_text())
    assert conf["auth_mode"] == "token"
    script = tmp_path / "auth.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    proc = subprocess.run([sys.executable, str(script), json.dumps(conf), str(ROOT)], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["admitted"] == "ran"
    assert not out["stranger_joined"] and out["stranger_rc"] != 0, out
