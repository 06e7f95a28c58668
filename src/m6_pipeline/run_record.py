"""A record of every `kedro run` (and so of every `dvc repro` stage, each a run of its own):
what made it (commit, whether the tree had uncommitted changes, Kedro environment, pipelines,
a digest of the parameters its pipeline read), what it measured (the numbers of each metrics,
summary or report dataset it saved) and what it wrote (each saved dataset's path). One JSON file
a run in `data/08_reporting/runs/<run id>.json`; the training curves themselves are dvclive's
(m6_pipeline.tracking), the timings run_times.json's."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

log = logging.getLogger(__name__)

DEFAULT_DIR = Path("data/08_reporting/runs")
METRIC_SUFFIXES = ("metrics", "summary", "report")


def git_state(project: Path) -> dict:
    """{commit, dirty}: the checked-out commit and whether tracked files differ from it; both
    None outside a git work tree (an unpacked release)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def parameters_digest(parameters: dict[str, Any]) -> str:
    """sha256 of the parameters as canonical JSON (sorted keys): equal for equal values."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()


def numbers(data: Any, prefix: str = "", depth: int = 3) -> dict[str, float]:
    """The numeric leaves of nested dicts, as `a/b/c` keys, `depth` levels down (lists and
    strings left out: curves and samples are in their own files)."""
    if isinstance(data, bool):
        return {}
    if isinstance(data, (int, float)):
        return {prefix: data}
    if isinstance(data, dict) and depth > 0:
        out = {}
        for key, value in data.items():
            out.update(numbers(value, f"{prefix}/{key}" if prefix else str(key), depth - 1))
        return out
    return {}


class RunRecordHook:
    def __init__(self, directory: str | Path = DEFAULT_DIR):
        self.directory = Path(directory)
        self._run: dict | None = None
        self._catalog = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        self._catalog = catalog
        params = {name: catalog.load(name) for name in sorted(pipeline.datasets())
                  if name.startswith("params:") and name in catalog}
        project = Path(run_params.get("project_path") or Path.cwd())
        self._run = {
            "run_id": run_params.get("run_id"), **git_state(project),
            "kedro_env": run_params.get("env") or "local",
            "pipelines": run_params.get("pipeline_names") or ["__default__"],
            "tags": sorted(run_params.get("tags") or []),
            "parameters_digest": parameters_digest(params), "parameters": sorted(params),
            "metrics": {}, "artifacts": {}, "project_path": project,
        }

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node) -> None:
        if self._run is None:
            return
        dataset = self._catalog.get(dataset_name) if self._catalog is not None else None
        path = getattr(dataset, "_filepath", None)
        if path is not None:
            self._run["artifacts"][dataset_name] = str(path)
        if dataset_name.endswith(METRIC_SUFFIXES) and isinstance(data, dict):
            self._run["metrics"][dataset_name] = numbers(data)

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result: dict, pipeline: Pipeline, catalog) -> None:
        self._write("completed")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        self._write("failed", f"{type(error).__name__}: {error}")

    def _write(self, status: str, error: str | None = None) -> None:
        if self._run is None:
            return
        run, self._run = self._run, None
        project = run.pop("project_path")
        record = {**run, "status": status, **({"error": error} if error else {})}
        target = project / self.directory / f"{str(run['run_id']).replace(':', '.')}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
        log.info("run record: %s", target)
