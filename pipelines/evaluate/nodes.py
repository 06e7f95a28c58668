"""Nodes of the `evaluate` pipeline: every task's metrics into one report, blind human-evaluation
batches out, completed annotations back in."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from m6_pipeline.annotation.results import read_scored
from m6_pipeline.evaluation.annotations import summarise
from m6_pipeline.evaluation.batch_images import batch_images
from m6_pipeline.evaluation.batches import build_batch
from m6_pipeline.evaluation.report import collect, markdown
from m6_pipeline.validation.gate import require_passed

log = logging.getLogger(__name__)
TASKS = ("vqa", "caption", "itm", "qa", "poem")


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    seed: int = 0
    items_per_task: dict[str, int] = Field(
        default_factory=lambda: {"vqa": 200, "caption": 100, "qa": 50, "poem": 50, "t2i": 50},
        description="source rows sampled per task (the paper: 200 VQA questions, 100 caption images)",
    )
    annotations_dir: Path = Field(
        Path("data/07_model_output/human_eval/annotations"),
        description="completed annotations (*.jsonl: item_id, annotator, scores), e.g. the app's export",
    )
    store: Path = Field(
        Path("data/07_model_output/human_eval/annotations/store.sqlite"),
        description="the annotation app's store: its scored answers to this batch's items are read too",
    )
    pairs_dir: Path = Field(Path("data/03_primary/pairs"), description="the clean pairs: the items' source images")


def export_batch(evaluate: dict, vqa: list, caption: list, qa: list, poem: list, t2i: list,
                 t2i_images: pd.DataFrame, clean_pairs_validation: dict) -> tuple[list, dict, dict, pd.DataFrame]:
    """The blind batch (items), its key, a manifest, and the images its items show (read from
    the clean pairs once their suite's result passes the gate)."""
    config = EvaluateConfig.model_validate(evaluate)
    require_passed(clean_pairs_validation, "clean_pairs", config.pairs_dir)
    predictions = {"vqa": vqa, "caption": caption, "qa": qa, "poem": poem, "t2i": t2i}
    items, key = build_batch(predictions, config.items_per_task, config.seed)
    images = batch_images(items, predictions, config.pairs_dir, t2i_images)
    manifest = {"seed": config.seed, "n_items": len(items), "n_images": len(images),
                "by_kind": {k: sum(i["kind"] == k for i in items) for k in sorted({i["kind"] for i in items})}}
    log.info("human evaluation batch: %s", manifest)
    return items, key, manifest, images


def read_annotations(evaluate: dict, key: dict) -> dict:
    """Every *.jsonl under annotations_dir and the app's store (none yet is fine: the report says so)."""
    config = EvaluateConfig.model_validate(evaluate)
    annotations = []
    for path in sorted(config.annotations_dir.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    annotations.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
    from_store = read_scored(config.store, key)
    seen = {(a["item_id"], a["annotator"]) for a in annotations}
    annotations += [a for a in from_store if (a["item_id"], a["annotator"]) not in seen]  # an export of the store read twice counts once
    log.info("human evaluation: %d annotations (%d from the app's store)", len(annotations), len(from_store))
    return summarise(annotations, key)


def report(vqa: dict, caption: dict, itm: dict, qa: dict, poem: dict, t2i: dict, human: dict) -> tuple[dict, str]:
    metrics = dict(zip(TASKS, (vqa, caption, itm, qa, poem)))
    summary = collect(metrics)
    summary["t2i_attribute_accuracy"] = t2i["attribute_accuracy"]
    if not summary["pretrained_wins_all"]:
        lost = [k for k, v in summary["pretrained_wins"].items() if not v]
        log.warning("evaluate: the pretrained model does not beat the baseline on %s", lost)
    return {"summary": summary, "human": human, "tasks": metrics}, markdown(summary, metrics, human, t2i)
