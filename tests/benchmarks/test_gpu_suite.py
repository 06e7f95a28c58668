"""The prepared GPU suite on a CPU machine: its dry run checks the dependencies and produces no
numbers; the dependency checker reports every missing import at once; the plugins script's
settings and, under torch_ddp on CPU (gloo, world size 1), its loss and clipping checks.

The scripts run in fresh interpreters (as the suite runs them), never inside pytest's."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BENCH = ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the annotations through it
    spec.loader.exec_module(module)
    return module


def _run(args: list[str], tmp_path, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable, **env}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment,
                          check=False)


def test_dry_run_checks_dependencies_and_writes_no_numbers(tmp_path):
    (tmp_path / "out").mkdir()
    proc = _run(["bash", str(BENCH / "gpu_suite.sh"), "--dry-run"], tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"python {sys.executable}" in out and "set by PYTHON" in out
    assert "dependency check: Python 3.11" in out and "all dependencies present" in out
    for part in ("gpu_deps", "gpu_mfu", "gpu_moe_mfu", "gpu_vqgan_step", "gpu_plugin_torch_ddp",
                 "gpu_plugin_gemini", "gpu_plugin_low_level_zero", "gpu_plugin_hybrid_parallel",
                 "gpu_plugin_moe_hybrid_parallel"):
        assert f"dry run {part}: ok" in out
    assert "no CUDA touched" in out and "tokens/s" not in out and "MFU" not in out
    assert list((tmp_path / "out").iterdir()) == []  # nothing written under $OUT


def test_unknown_argument_is_refused(tmp_path):
    proc = _run(["bash", str(BENCH / "gpu_suite.sh"), "--fast"], tmp_path, timeout=60)
    assert proc.returncode == 2 and "unknown argument --fast" in proc.stderr


def test_dependency_check_reports_every_missing_import_at_once(tmp_path):
    fake = tmp_path / "shadow" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated: torch is not installed')\n")
    proc = _run([sys.executable, str(BENCH / "gpu_deps.py"), "--dry-run"], tmp_path, timeout=300,
                PYTHONPATH=str(tmp_path / "shadow"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "FATAL: torch does not import: ImportError: simulated" in proc.stdout
    # the imports that need torch are all named, the model's and ColossalAI's among them
    for name in ("m6_pipeline.model.moe.MoELayer", "m6_pipeline.training.plugins.make_plugin",
                 "colossalai.booster.Booster", "m6_pipeline.vqgan.train.VQGANTrainer"):
        assert name in proc.stdout
    assert not (tmp_path / "out").exists()


def test_dependency_check_reads_the_imports_of_the_suite_scripts():
    deps = _load("gpu_deps")
    imports = deps.script_imports([BENCH / "gpu_plugins.py", BENCH / "gpu_moe_mfu.py"])
    assert ("colossalai.booster", "Booster") in imports  # imported inside a function
    assert ("m6_pipeline.model.moe", "ExpertParallel") in imports
    assert ("gpu_mfu", "peak_tflops") not in imports  # a sibling script, not a dependency


def test_plugin_settings_are_typed_and_refuse_cuda_plugins_on_cpu():
    plugins = _load("gpu_plugins")
    moe = plugins.run_settings(plugins.parse_args(["--plugin", "moe_hybrid_parallel", "--max-norm", "0.5"]))
    assert moe.plugin.name == "moe_hybrid_parallel" and moe.plugin.ep_size == 1
    assert moe.model.moe is not None and moe.model.moe.n_experts == 4 and moe.max_norm == 0.5
    dense = plugins.run_settings(plugins.parse_args(["--plugin", "hybrid_parallel", "--zero-stage", "1"]))
    assert dense.model.moe is None and dense.plugin.tp_size == 1 and dense.plugin.zero_stage == 1
    assert dense.steps == 10 and dense.precision == "bf16"
    with pytest.raises(ValueError, match="needs CUDA; on CPU only torch_ddp runs"):
        plugins.run_settings(plugins.parse_args(["--plugin", "gemini", "--device", "cpu"]))
    with pytest.raises(SystemExit):
        plugins.parse_args(["--plugin", "zero3"])


def test_torch_ddp_run_on_cpu_clips_and_the_loss_falls(tmp_path):
    output = tmp_path / "ddp.json"
    proc = _run([sys.executable, str(BENCH / "gpu_plugins.py"), "--plugin", "torch_ddp", "--device", "cpu",
                 "--precision", "fp32", "--output", str(output)], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(output.read_text())
    steps = result["steps"]
    assert len(steps) == 10 and result["passed"] and result["checks"]["failures"] == []
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.1
    assert all(s["pre_clip_norm"] > 0.1 for s in steps)  # clipping engaged at every step
    assert all(abs(s["post_clip_norm"] - 0.1) < 1e-3 for s in steps)
    assert result["clipped_by"] == "this script: optimizer.clip_grad_by_norm"
    assert result["pre_clip_source"] == "parameter gradients after backward"


def test_a_run_whose_clipping_never_engages_fails_its_check(tmp_path):
    output = tmp_path / "ddp.json"
    proc = _run([sys.executable, str(BENCH / "gpu_plugins.py"), "--plugin", "torch_ddp", "--device", "cpu",
                 "--steps", "2", "--max-norm", "1000", "--output", str(output)], tmp_path)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(output.read_text())
    assert not result["passed"] and not result["checks"]["clipping_engaged"]
    assert any("clipping was not tested" in failure for failure in result["checks"]["failures"])
