"""The run-times hook through Kedro's runner: a tiny pipeline of three stages (a tag, a namespace,
the pipeline's name), a slow save, a node whose memory lives in a child process, a stage that
reports its precision; and a failing run, which still writes its record."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kedro.framework.hooks import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from m6_pipeline.machine import describe_machine
from m6_pipeline.run_times import DEFAULT_PATH, RunTimesHook, stage_of

STAGES = {"corpus", "tokenizer", "features", "pretrain_base", "pretrain_100b", "vqgan", "finetune_t2i",
          "finetune_vqa", "finetune_caption", "finetune_itm", "qa", "poem", "evaluate"}
CHOICE = {"requested": "auto", "precision": "fp32", "reason": "bf16 is emulated here", "device": "cpu"}
CHILD_MIB = 200


class SlowSaveDataset(MemoryDataset):
    """A memory dataset whose save takes 0.4 s, like a lazy Ray dataset executing as it is written."""

    def save(self, data) -> None:
        time.sleep(0.4)
        super().save(data)


def make_numbers() -> list[int]:
    time.sleep(0.6)
    return list(range(10))


def train(numbers: list[int]) -> tuple[dict, list[int]]:
    return {"loss": 1.0, "precision": CHOICE}, numbers


def hold_memory_in_a_child(summary: dict) -> int:
    """Memory held by a child process (as Ray's workers hold it), not by this one."""
    code = f"import time; block = b'x' * ({CHILD_MIB} << 20); time.sleep(1.5)"
    return subprocess.run([sys.executable, "-c", code], check=True).returncode


def fail(numbers: list[int]) -> int:
    raise ValueError("no numbers above 9")


def printed_table(stdout: str, status: str) -> list[str]:
    """The lines of the table the hook printed (stdout also carries Kedro's log lines)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"run {status} in "))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("total"))
    return lines[start:end + 1]


def run_like_a_session(pipeline: Pipeline, catalog: DataCatalog, hook, project_path, run_id: str = "test-run",
                       env: str = "local") -> None:
    """What `KedroSession.run` does around the runner (kedro 1.7): the pipeline hooks, with the
    runner calling the node and dataset hooks in between."""
    manager = _create_hook_manager()
    manager.register(hook)
    run_params = {"run_id": run_id, "project_path": str(project_path), "pipeline_names": ["tiny"],
                  "runner": "SequentialRunner", "env": env}
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
    try:
        result = SequentialRunner().run(pipeline, catalog, manager, run_id=run_id)
    except Exception as error:
        manager.hook.on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline, catalog=catalog)
        raise
    manager.hook.after_pipeline_run(run_params=run_params, run_result=result, pipeline=pipeline, catalog=catalog)


def test_every_node_is_timed_grouped_into_stages_and_the_precision_collected(tmp_path, capsys):
    pipeline = (
        Pipeline([Node(make_numbers, None, "numbers", name="make_numbers")], tags="corpus")
        + Pipeline([Node(train, "numbers", ["summary", "kept"], name="train")], namespace="pretrain_base",
                   inputs={"numbers"}, outputs={"summary"})
        + Pipeline([Node(hold_memory_in_a_child, "summary", "child_exit", name="report")])
    )
    catalog = DataCatalog({"numbers": SlowSaveDataset()})

    run_like_a_session(pipeline, catalog, RunTimesHook(sample_interval_s=0.2), tmp_path)

    record = json.loads((tmp_path / DEFAULT_PATH).read_text())
    assert record["status"] == "succeeded" and record["not_run"] == []
    assert record["machine"] == json.loads(json.dumps(describe_machine()))
    nodes = {node["node"]: node for node in record["nodes"]}
    assert list(nodes) == ["make_numbers", "pretrain_base.train", "report"]  # in run order
    assert {node["status"] for node in nodes.values()} == {"ok"}
    # the span covers the run and the save
    made = nodes["make_numbers"]
    assert made["run_seconds"] >= 0.6 and made["save_seconds"] >= 0.4 and made["wall_seconds"] >= 1.0
    assert all(node["peak_rss_mib"] > 0 and node["driver_maxrss_mib"] > 0 for node in nodes.values())
    # a child's memory counts: the report node's peak is the others' plus the child's block
    assert nodes["report"]["peak_rss_mib"] - made["peak_rss_mib"] > 0.75 * CHILD_MIB
    assert nodes["report"]["wall_seconds"] >= 1.5

    # tag, namespace, and the pipeline's name for a node with neither
    assert [(s["stage"], s["nodes"]) for s in record["stages"]] == [
        ("corpus", ["make_numbers"]), ("pretrain_base", ["pretrain_base.train"]), ("tiny", ["report"])]
    assert record["stages"][2]["peak_rss_mib"] == nodes["report"]["peak_rss_mib"]
    assert record["stages"][0]["wall_seconds"] == made["wall_seconds"]
    assert record["precision"] == {"pretrain_base": CHOICE}
    assert nodes["pretrain_base.train"]["precision"] == CHOICE
    assert record["stages"][1]["precision"] == CHOICE and record["stages"][0]["precision"] is None

    lines = printed_table(capsys.readouterr().out, "succeeded")
    assert [line.split()[0] for line in lines[1:] if not line.startswith("-")] == [
        "stage", "corpus", "pretrain_base", "tiny", "total"]
    assert "fp32 (asked auto)" in lines[3]


def test_a_failing_node_still_writes_the_record(tmp_path, capsys):
    pipeline = Pipeline([
        Node(make_numbers, None, "numbers", name="make_numbers"),
        Node(fail, "numbers", "above_nine", name="fail"),
        Node(len, "above_nine", "count", name="count"),
    ], tags="corpus")
    path = tmp_path / "elsewhere" / "times.json"

    with pytest.raises(ValueError, match="no numbers above 9"):
        run_like_a_session(pipeline, DataCatalog(), RunTimesHook(path=path), tmp_path)

    record = json.loads(path.read_text())
    assert record["status"] == "failed" and "no numbers above 9" in record["error"]
    assert [(n["node"], n["status"]) for n in record["nodes"]] == [("make_numbers", "ok"), ("fail", "failed")]
    assert "ValueError: no numbers above 9" in record["nodes"][1]["error"]
    assert record["not_run"] == ["count"]
    assert record["stages"][0]["nodes"] == ["make_numbers", "fail"]
    lines = printed_table(capsys.readouterr().out, "failed")
    assert [line.split()[0] for line in lines[1:] if not line.startswith("-")] == ["stage", "corpus", "total"]
    assert not (tmp_path / DEFAULT_PATH).exists()


def test_the_project_registers_the_hook_and_every_node_has_a_stage():
    from m6_pipeline import settings
    from m6_pipeline.pipeline_registry import register_pipelines

    assert any(isinstance(hook, RunTimesHook) for hook in settings.HOOKS)
    stages = {stage_of(node, "untagged") for node in register_pipelines()["__default__"].nodes}
    assert stages == STAGES
