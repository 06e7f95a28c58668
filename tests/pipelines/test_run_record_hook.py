"""The run record through Kedro's runner: the commit and whether the tree was clean, the Kedro
environment, a digest that changes with the parameters, the numbers of the metrics datasets and
the paths of what was saved; a failing run is recorded too."""

from __future__ import annotations

import json
import subprocess

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro_datasets.json import JSONDataset

from m6_pipeline.run_record import RunRecordHook, numbers, parameters_digest
from tests.pipelines.test_run_times_hook import run_like_a_session


def score(params: dict) -> dict:
    if params["steps"] < 0:
        raise ValueError("steps must be >= 0")
    return {"accuracy": 0.5 + params["steps"] / 100, "per_class": {"red": 0.9, "blue": 0.1},
            "curve": [1.0, 0.5], "label": "ok", "passed": True}


def git_repo(path):
    path.mkdir()
    for args in (["init", "-q"], ["config", "user.email", "ci@example.invalid"], ["config", "user.name", "ci"]):
        subprocess.run(["git", *args], cwd=path, check=True)
    (path / "README.md").write_text("x\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True)
    subprocess.run(["git", "commit", "-qm", "first"], cwd=path, check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True).stdout.strip()


def run(project, steps: int, env: str = "local") -> dict:
    pipeline = Pipeline([Node(score, "params:task", "task_metrics", name="score")])
    catalog = DataCatalog(datasets={
        "params:task": MemoryDataset({"steps": steps}),
        "task_metrics": JSONDataset(filepath=str(project / "out/metrics.json")),
    })
    hook = RunRecordHook("runs")
    run_like_a_session(pipeline, catalog, hook, project, run_id=f"run-{steps}-{env}", env=env)
    return json.loads((project / "runs" / f"run-{steps}-{env}.json").read_text())


def test_a_run_records_what_made_it_what_it_measured_and_wrote(tmp_path):
    project = tmp_path / "project"
    commit = git_repo(project)
    record = run(project, 20, env="cluster")
    assert record["status"] == "completed" and record["commit"] == commit and record["dirty"] is False
    assert record["kedro_env"] == "cluster" and record["parameters"] == ["params:task"]
    assert record["parameters_digest"] == parameters_digest({"params:task": {"steps": 20}})
    assert record["metrics"] == {"task_metrics": {"accuracy": 0.7, "per_class/red": 0.9, "per_class/blue": 0.1}}
    assert record["artifacts"] == {"task_metrics": str(project / "out/metrics.json")}

    (project / "README.md").write_text("changed\n")
    again = run(project, 30)
    assert again["dirty"] is True and again["parameters_digest"] != record["parameters_digest"]


def test_a_failed_run_is_recorded_with_its_error(tmp_path):
    with pytest.raises(ValueError):
        run(tmp_path, -1)
    record = json.loads((tmp_path / "runs" / "run--1-local.json").read_text())
    assert record["status"] == "failed" and "steps must be >= 0" in record["error"]
    assert record["commit"] is None and record["metrics"] == {}  # not a git work tree


def test_numbers_keeps_numeric_leaves_only():
    assert numbers({"a": 1, "b": {"c": 2.5, "d": [1, 2], "e": "x", "f": True}}) == {"a": 1, "b/c": 2.5}
