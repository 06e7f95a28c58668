"""A Kedro hook that records every node's wall time and peak memory, grouped into the project's
stages, with the machine the run used and the precision each stage chose.

At the end of a run, successful or not, it writes `data/08_reporting/run_times.json` (relative to
the project directory) and prints a per-stage table. The record:

    {"started", "finished" (ISO 8601, UTC), "wall_seconds", "status" ("succeeded" | "failed"),
     "error" (failed runs), "run_id", "pipelines", "machine": describe_machine(),
     "allocator": the driver's malloc setting (m6_pipeline.allocator) or null,
     "nodes": [{"node", "stage", "started", "wall_seconds", "load_seconds", "run_seconds",
                "save_seconds", "peak_rss_mib", "driver_maxrss_mib", "status", "error"?,
                "precision"?}, ...]                               (in the order the nodes started),
     "stages": [{"stage", "wall_seconds", "peak_rss_mib", "nodes", "precision"}, ...] (run order),
     "precision": {stage: choice}, "not_run": [nodes of the pipeline that never started]}

A node's span runs from loading its first input to saving its last output: a node that returns a
lazy Ray dataset does its work when the dataset is saved, so the function call alone says little.
`load_seconds`, `run_seconds` and `save_seconds` split it. `peak_rss_mib` is the peak RSS of the
driver plus every process it started (Ray's workers among them), sampled every 0.5 s
(`m6_pipeline.process_memory`); `driver_maxrss_mib` is the driver's own lifetime peak
(ru_maxrss) when the node ended. A stage's wall time is the sum of its nodes' (stages' nodes may
interleave in a combined run); its peak is the largest of its nodes'.

Stages: a node's stage is the top of its namespace (`pretrain_base.pretrain` -> `pretrain_base`;
the pretraining, finetuning and prompting pipelines are namespaced), else its tag (the other
pipelines tag their nodes with their name: `corpus`, `tokenizer`, ...), else the one pipeline
named on the command line, else `untagged`.

Precision: a stage records the precision it chose by putting it in a report it returns. After a
node runs, every output that is a dict holding a "precision" dict with (at least) the keys
"requested" and "precision" is taken as that stage's choice, e.g.
`{"precision": {"requested": "auto", "precision": "bf16", "reason": "..."}, ...}`. The node's
record keeps it; the stage's is the last one a node of the stage returned.

The record is written by the pipeline hooks, which `KedroSession.run` (so `kedro run`) calls; a
runner used on its own calls only the node hooks, and the hook records nothing. Under a
`ParallelRunner` the node hooks run in the worker processes, so the record would hold no nodes:
the project runs nodes sequentially and leaves the parallelism to Ray.
"""

from __future__ import annotations

import inspect
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Node, Pipeline

from m6_pipeline.allocator import current_setting
from m6_pipeline.machine import describe_machine
from m6_pipeline.process_memory import MIB, TreeRssSampler, driver_maxrss_mib

log = logging.getLogger(__name__)

DEFAULT_PATH = "data/08_reporting/run_times.json"


def stage_of(node: Node, fallback: str) -> str:
    """The stage `node` belongs to: the top of its namespace, else its first tag (sorted), else
    `fallback`."""
    if node.namespace:
        return node.namespace.split(".")[0]
    if node.tags:
        return sorted(node.tags)[0]
    return fallback


def precision_choice(value: Any) -> dict | None:
    """The precision choice a node output carries: `value["precision"]` when `value` is a dict and
    that entry is a dict with the keys "requested" and "precision"; else None."""
    if not isinstance(value, dict):
        return None
    choice = value.get("precision")
    if isinstance(choice, dict) and {"requested", "precision"} <= choice.keys():
        return dict(choice)
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class _NodeSpan:
    """One node's timing while it runs (perf_counter seconds)."""

    name: str
    stage: str
    started: str
    outputs: int
    seq: int  # the order the node started in
    streaming: bool = False  # a generator node: outputs saved chunk by chunk, the last unknown
    t_open: float = field(default_factory=time.perf_counter)
    t_run: float | None = None
    t_ran: float | None = None
    saved: int = 0
    precision: dict | None = None

    def record(self, peak_rss: int, status: str, error: str | None = None) -> dict:
        t_close = time.perf_counter()
        t_run = self.t_run if self.t_run is not None else t_close
        t_ran = self.t_ran if self.t_ran is not None else t_close
        out = {
            "node": self.name, "stage": self.stage, "started": self.started,
            "wall_seconds": round(t_close - self.t_open, 3),
            "load_seconds": round(t_run - self.t_open, 3),
            "run_seconds": round(t_ran - t_run, 3),
            "save_seconds": round(t_close - t_ran, 3),
            "peak_rss_mib": round(peak_rss / MIB, 1),
            "driver_maxrss_mib": round(driver_maxrss_mib(), 1),
            "status": status,
        }
        if error is not None:
            out["error"] = error
        if self.precision is not None:
            out["precision"] = self.precision
        return out


def summarise_stages(nodes: list[dict]) -> list[dict]:
    """Per-stage totals of node records (in start order), stages in the order their first node
    started."""
    stages: dict[str, dict] = {}
    for node in nodes:
        stage = stages.setdefault(node["stage"], {"stage": node["stage"], "wall_seconds": 0.0,
                                                  "peak_rss_mib": 0.0, "nodes": [], "precision": None})
        stage["wall_seconds"] = round(stage["wall_seconds"] + node["wall_seconds"], 3)
        stage["peak_rss_mib"] = max(stage["peak_rss_mib"], node["peak_rss_mib"])
        stage["nodes"].append(node["node"])
        if "precision" in node:
            stage["precision"] = node["precision"]
    return list(stages.values())


def format_table(record: dict) -> str:
    """The per-stage table printed at the end of a run: wall seconds, peak RSS in MiB, node count
    and precision per stage, then the total (summed wall, largest peak)."""
    rows = [("stage", "wall s", "peak RSS MiB", "nodes", "precision")]
    for stage in record["stages"]:
        choice = stage["precision"]
        if choice is None:
            precision = "-"
        elif choice["requested"] == choice["precision"]:
            precision = str(choice["precision"])
        else:
            precision = f"{choice['precision']} (asked {choice['requested']})"
        rows.append((stage["stage"], f"{stage['wall_seconds']:.1f}", f"{stage['peak_rss_mib']:.0f}",
                     str(len(stage["nodes"])), precision))
    stages = record["stages"]
    rows.append(("total", f"{sum(s['wall_seconds'] for s in stages):.1f}",
                 f"{max((s['peak_rss_mib'] for s in stages), default=0):.0f}",
                 str(sum(len(s["nodes"]) for s in stages)), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]}".rstrip()
             for r in rows]
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    head = (f"run {record['status']} in {record['wall_seconds']:.1f} s on "
            f"{record['machine']['cpu_model']} ({record['machine']['cores']} cores)")
    return "\n".join([head, *lines])


class RunTimesHook:
    """Records each node's wall time and peak RSS and writes the run's record at its end (see the
    module docstring). `path` is relative to the project directory unless absolute;
    `sample_interval_s` is the RSS sampling period in seconds."""

    def __init__(self, path: str | Path = DEFAULT_PATH, sample_interval_s: float = 0.5):
        self.path = Path(path)
        self.sample_interval_s = sample_interval_s
        self._lock = threading.Lock()
        self._run: dict | None = None

    # pipeline hooks: begin and end the record

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        named = names[0] if len(names) == 1 and names[0] != "__default__" else "untagged"
        with self._lock:
            if self._run is not None:  # a run interrupted without a pipeline hook (Ctrl-C)
                self._run["sampler"].stop()
            self._run = {
                "started": _now(), "t0": time.perf_counter(), "run_id": run_params.get("run_id"),
                "pipelines": names, "fallback_stage": named, "seq": itertools.count(),
                "project_path": Path(run_params.get("project_path") or Path.cwd()),
                "planned": [node.name for node in pipeline.nodes],
                "open": {}, "nodes": [], "sampler": TreeRssSampler(self.sample_interval_s),
            }

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any], run_result: dict, pipeline: Pipeline,
                           catalog) -> None:
        self._finish("succeeded")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Pipeline,
                          catalog) -> None:
        self._finish("failed", f"{type(error).__name__}: {error}")

    # node and dataset hooks: a node's span opens at its first input load (or its run, without
    # inputs) and closes after its last output is saved (or its run, without outputs)

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Node) -> None:
        self._span(node)

    @hook_impl
    def before_node_run(self, node: Node, catalog, inputs: dict[str, Any], is_async: bool, run_id: str) -> None:
        span = self._span(node)
        if span is not None:
            span.t_run = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Node, catalog, inputs: dict[str, Any], outputs: dict[str, Any],
                       is_async: bool, run_id: str) -> None:
        span = self._span(node)
        if span is None:
            return
        span.t_ran = time.perf_counter()
        for value in outputs.values():
            span.precision = precision_choice(value) or span.precision
        if span.outputs == 0:
            self._close(node.name, "ok")

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        span = self._span(node)
        if span is None:
            return
        with self._lock:
            span.saved += 1
            done = span.saved >= span.outputs and not span.streaming
        if done:
            self._close(node.name, "ok")

    @hook_impl
    def on_node_error(self, error: Exception, node: Node, catalog, inputs: dict[str, Any], is_async: bool,
                      run_id: str) -> None:
        if self._span(node) is not None:
            self._close(node.name, "failed", f"{type(error).__name__}: {error}")

    # the record

    def _span(self, node: Node) -> _NodeSpan | None:
        """The open span of `node`, opened now if this is its first event; None outside a run.
        Opening a span closes a generator node's: its last chunk was saved before the next node
        started (the sequential runner)."""
        with self._lock:
            if self._run is None:
                return None
            span = self._run["open"].get(node.name)
            if span is not None:
                return span
            span = _NodeSpan(node.name, stage_of(node, self._run["fallback_stage"]), _now(),
                             len(node.outputs), seq=next(self._run["seq"]),
                             streaming=inspect.isgeneratorfunction(node.func))
            streamed = [name for name, other in self._run["open"].items() if other.streaming]
            self._run["open"][node.name] = span
            sampler = self._run["sampler"]
        for name in streamed:
            self._close(name, "ok")
        sampler.open(node.name)
        return span

    def _close(self, name: str, status: str, error: str | None = None) -> None:
        with self._lock:
            if self._run is None or name not in self._run["open"]:
                return
            span, sampler = self._run["open"].pop(name), self._run["sampler"]
        record = span.record(sampler.close(name), status, error)
        with self._lock:
            self._run["nodes"].append((span.seq, record))

    def _finish(self, status: str, error: str | None = None) -> None:
        if self._run is None:
            return
        for name in list(self._run["open"]):  # a save that raised, or a node the error interrupted
            self._close(name, "failed" if status == "failed" else "ok", error)
        run, self._run = self._run, None
        run["sampler"].stop()
        nodes = [record for _, record in sorted(run["nodes"], key=lambda item: item[0])]
        started_nodes = {node["node"] for node in nodes}
        record = {
            "started": run["started"], "finished": _now(),
            "wall_seconds": round(time.perf_counter() - run["t0"], 3), "status": status,
            **({"error": error} if error else {}),
            "run_id": run["run_id"], "pipelines": run["pipelines"], "machine": describe_machine(),
            "allocator": setting.record() if (setting := current_setting()) else None,
            "nodes": nodes, "stages": summarise_stages(nodes),
            "not_run": [name for name in run["planned"] if name not in started_nodes],
        }
        record["precision"] = {s["stage"]: s["precision"] for s in record["stages"] if s["precision"]}
        path = self.path if self.path.is_absolute() else run["project_path"] / self.path
        table = format_table(record)
        log.info("run times (%s)\n%s", path, table)
        print(table, flush=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str))
        except OSError as exc:  # a lost record must not fail the run it describes
            log.error("run times: could not write %s (%s); make its folder writable or give "
                      "RunTimesHook(path=...) in settings.py another path", path, exc)
