"""Nodes of the `evaluate` pipeline: every task's metrics into one report, blind human-evaluation
batches out, completed annotations back in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from m6_pipeline.evaluation.annotations import summarise
from m6_pipeline.evaluation.batches import build_batch
from m6_pipeline.evaluation.report import collect, markdown

log = logging.getLogger(__name__)
TASKS = ("vqa", "caption", "itm", "qa", "poem")


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int = 0
    items_per_task: dict[str, int] = Field(
        default_factory=lambda: {"vqa": 200, "caption": 100, "qa": 50, "poem": 50},
        description="source rows sampled per task (the paper: 200 VQA questions, 100 caption images)",
    )
    annotations_dir: Path = Field(
        Path("data/07_model_output/human_eval/annotations"),
        description="completed annotations (*.jsonl: item_id, annotator, scores), e.g. the app's export",
    )


def export_batch(evaluate: dict, vqa: list, caption: list, qa: list, poem: list) -> tuple[list, dict, dict]:
    config = EvaluateConfig.model_validate(evaluate)
    items, key = build_batch({"vqa": vqa, "caption": caption, "qa": qa, "poem": poem},
                             config.items_per_task, config.seed)
    manifest = {"seed": config.seed, "n_items": len(items),
                "by_kind": {k: sum(i["kind"] == k for i in items) for k in sorted({i["kind"] for i in items})}}
    log.info("human evaluation batch: %s", manifest)
    return items, key, manifest


def read_annotations(evaluate: dict, key: dict) -> dict:
    """Every *.jsonl under annotations_dir (none yet is fine: the report says so)."""
    config = EvaluateConfig.model_validate(evaluate)
    annotations = []
    for path in sorted(config.annotations_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    annotations.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
    return summarise(annotations, key)


def report(vqa: dict, caption: dict, itm: dict, qa: dict, poem: dict, t2i: dict, human: dict) -> tuple[dict, str]:
    metrics = dict(zip(TASKS, (vqa, caption, itm, qa, poem)))
    summary = collect(metrics)
    summary["t2i_attribute_accuracy"] = t2i["attribute_accuracy"]
    if not summary["pretrained_wins_all"]:
        lost = [k for k, v in summary["pretrained_wins"].items() if not v]
        log.warning("evaluate: the pretrained model does not beat the baseline on %s", lost)
    return {"summary": summary, "human": human, "tasks": metrics}, markdown(summary, metrics, human, t2i)
