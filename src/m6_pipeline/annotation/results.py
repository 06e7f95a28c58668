"""What the admin reads and exports, and what the evaluate pipeline reads back: the store's
scored answers as the {item_id, annotator, scores} annotations `evaluation.annotations.summarise`
turns into means with 95% intervals and Krippendorff's alpha."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from m6_pipeline.annotation.store import AnnotationStore, Annotator
from m6_pipeline.evaluation.annotations import summarise
from m6_pipeline.evaluation.batches import CRITERIA

log = logging.getLogger(__name__)


def _annotation(answer: dict) -> dict:
    return {"item_id": answer["item_id"], "annotator": answer["annotator"], "scores": answer["scores"]}


def results(store: AnnotationStore, admin: Annotator) -> dict:
    """summarise() over the scored answers, plus what annotators skipped and flagged."""
    answers = store.answers(admin)
    scored = [a for a in answers if a["status"] == "scored"]
    out = summarise([_annotation(a) for a in scored], {a["item_id"]: a["key"] for a in scored})
    out["skipped"] = sum(a["status"] == "skipped" for a in answers)
    out["flags"] = [{"item_id": a["item_id"], "annotator": a["annotator"], "comment": a["comment"]}
                    for a in answers if a["status"] == "flagged"]
    return out


def export_jsonl(store: AnnotationStore, admin: Annotator) -> str:
    """The scored answers as the evaluate pipeline's annotation files read them."""
    return "".join(json.dumps(_annotation(a), ensure_ascii=False) + "\n"
                   for a in store.answers(admin) if a["status"] == "scored")


# a cell starting with one of these runs as a formula when the file is opened in a spreadsheet
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """Text a spreadsheet shows as text: a leading formula character is escaped with a quote
    (OWASP's CSV injection advice); numbers and other values as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def export_csv(store: AnnotationStore, admin: Annotator) -> str:
    """Every live answer, one row each, with task, model and one column per criterion; every
    text cell safe to open in a spreadsheet (safe_cell)."""
    criteria = sorted({c for kind in CRITERIA.values() for c in kind})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["item_id", "task", "model", "annotator", "status", *criteria, "comment", "seconds", "created_at"])
    for a in store.answers(admin):
        writer.writerow([safe_cell(v) for v in (
            a["item_id"], a["key"]["task"], a["key"]["model"], a["annotator"], a["status"],
            *(a["scores"].get(c, "") for c in criteria), a["comment"] or "", a["seconds"], a["created_at"])])
    return out.getvalue()


def read_scored(path: str | Path, key: dict) -> list[dict]:
    """The store's scored answers to items of this batch's `key` (the evaluate pipeline runs
    as the store's owner). Answers to items of earlier batches are left out, with a warning."""
    if not Path(path).exists():
        return []
    answers = [a for a in AnnotationStore(path).owner_answers() if a["status"] == "scored"]
    current = [a for a in answers if a["item_id"] in key]
    if stale := len(answers) - len(current):
        log.warning("%d scored answers in %s are of items not in this batch (an earlier batch): left out", stale, path)
    return [_annotation(a) for a in current]
