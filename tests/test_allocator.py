"""The allocator setting: a laptop MoE training step faults in far fewer pages once freed memory
is retained (each measured in a fresh process, since the setting is per process), the setting is
made once, it is a stated no-op off glibc, and the Kedro hooks apply and record it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from m6_pipeline import allocator
from m6_pipeline.hooks import AllocatorHook
from m6_pipeline.run_times import DEFAULT_PATH, RunTimesHook

# five bf16 steps of a 2-block MoE model of the laptop pretrain_100b width (16 experts): the expert
# weights' bf16 copies and gradients are 8 MiB buffers, allocated and freed every step
STEPS = """
import resource, sys, torch
torch.set_num_threads(1)
if sys.argv[1] == "retain":
    from m6_pipeline.allocator import retain_freed_memory
    assert retain_freed_memory().applied
from m6_pipeline.model.config import M6Config
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.moe import MoEConfig
torch.manual_seed(0)
B, T = 8, 100
model = M6Model(M6Config(vocab_size=2000, n_layers=2, d_model=256, n_heads=4, max_positions=128, dropout=0.0,
                         moe=MoEConfig(n_experts=16, top_k=1)))
ids = torch.randint(0, 2000, (B, T)); segments = torch.ones(B, T, dtype=torch.long)
labels = ids.clone(); labels[:, :50] = -100
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(ids, segments, torch.full((B,), 50), torch.full((B,), T), labels=labels)
    loss.backward(); optimizer.step(); optimizer.zero_grad(set_to_none=True)
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's mallopt")


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@glibc_only
def test_a_training_step_faults_in_fewer_pages_once_freed_memory_is_retained():
    default, retained = page_faults("default"), page_faults("retain")
    # measured 81k against 36k: the buffers of one step are reused by the next
    assert retained < 0.7 * default, (default, retained)


@pytest.fixture
def fresh_setting(monkeypatch):
    monkeypatch.setattr(allocator, "_setting", None)


@glibc_only
def test_the_setting_is_made_once(fresh_setting, monkeypatch):
    first = allocator.retain_freed_memory()
    assert first.applied and first.mmap_threshold_mib == 64 and first.trim_threshold_mib == 256
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *_: pytest.fail("mallopt called twice"))
    assert allocator.retain_freed_memory() is first is allocator.current_setting()


def test_off_glibc_it_does_nothing_and_says_why(fresh_setting, monkeypatch):
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *_: pytest.fail("no libc call off glibc"))
    setting = allocator.retain_freed_memory()
    assert not setting.applied and setting.reason == "not glibc (Darwin unknown libc)"
    assert setting.record() == {"applied": False, "mmap_threshold_mib": None, "trim_threshold_mib": None,
                                "reason": "not glibc (Darwin unknown libc)", "huge_pages": False}


@glibc_only
def test_the_hook_applies_it_and_the_run_record_carries_it(fresh_setting, tmp_path):
    from kedro.framework.hooks import _create_hook_manager
    from kedro.io import DataCatalog
    from kedro.pipeline import Node, Pipeline
    from kedro.runner import SequentialRunner

    manager = _create_hook_manager()
    manager.register(AllocatorHook())
    manager.register(RunTimesHook())
    manager.hook.after_context_created(context=None)
    pipeline = Pipeline([Node(lambda: 1, None, "one", name="one")])
    run_params = {"run_id": "r", "project_path": str(tmp_path), "pipeline_names": ["tiny"]}
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=DataCatalog())
    result = SequentialRunner().run(pipeline, DataCatalog(), manager, run_id="r")
    manager.hook.after_pipeline_run(run_params=run_params, run_result=result, pipeline=pipeline,
                                    catalog=DataCatalog())

    record = json.loads((tmp_path / DEFAULT_PATH).read_text())
    assert record["allocator"] == {"applied": True, "mmap_threshold_mib": 64, "trim_threshold_mib": 256,
                                   "reason": "freed tensor memory is reused, not returned and faulted in again",
                                   "huge_pages": "glibc.malloc.hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "")}


def test_workers_get_glibc_huge_pages_beside_other_tunables(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    if platform.libc_ver()[0] != "glibc":
        assert allocator.worker_environment() == {}
        return
    assert allocator.worker_environment() == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")
    assert allocator.worker_environment() == {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


RAY_WORKER_ENV = """
import ray
from types import SimpleNamespace
from m6_pipeline.hooks import RayHook
RayHook().after_context_created(SimpleNamespace(config_loader={"ray": {"num_cpus": 1}}))

@ray.remote
def started_with():
    environ = open("/proc/self/environ", "rb").read().split(b"\\0")
    return [e.decode() for e in environ if e.startswith(b"GLIBC_TUNABLES=")]

print(ray.get(started_with.remote()))
ray.shutdown()
"""


@glibc_only
def test_ray_workers_start_with_huge_pages():
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", RAY_WORKER_ENV], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    # in the environment the worker process was started with, where glibc reads it
    assert done.stdout.strip().splitlines()[-1] == "['GLIBC_TUNABLES=glibc.malloc.hugetlb=1']"
