"""Completed human annotations back into results: per task, model and criterion the mean with
its 95% confidence interval, and inter-annotator agreement (Krippendorff's alpha) where items
have several annotators.

An annotation is a dict {item_id, annotator, scores: {criterion: value}} (what the Streamlit
app stores and exports); unknown item ids and values outside a criterion's range are errors."""

from __future__ import annotations

from collections import defaultdict

from m6_pipeline.evaluation.batches import CRITERIA
from m6_pipeline.evaluation.human import krippendorff_alpha, mean_with_ci


def _check(annotation: dict, key: dict) -> None:
    item = annotation.get("item_id")
    if item not in key:
        raise ValueError(f"annotation of unknown item {item!r}: it is not in this batch's key")
    if not annotation.get("annotator"):
        raise ValueError(f"annotation of item {item} names no annotator")
    for criterion, value in annotation.get("scores", {}).items():
        allowed = CRITERIA[key[item]["task"]].get(criterion)
        if allowed is None:
            raise ValueError(f"item {item}: criterion {criterion!r} is not one of {sorted(CRITERIA[key[item]['task']])}")
        if isinstance(allowed[0], str):
            if value not in allowed:
                raise ValueError(f"item {item}: {criterion}={value!r}, expected one of {allowed}")
        elif not (allowed[0] <= value <= allowed[1]):
            raise ValueError(f"item {item}: {criterion}={value} outside {allowed}")


def summarise(annotations: list[dict], key: dict) -> dict:
    """{task: {model: {criterion: {mean, low, high, n}}}, "agreement": {task: {criterion: alpha}},
    "annotators": {annotator: count}}. The Turing test's score is the share of judgements that
    picked the model's answer as human's (0.5 = indistinguishable)."""
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    ratings: dict = defaultdict(lambda: defaultdict(dict))
    per_annotator: dict[str, int] = defaultdict(int)
    for annotation in annotations:
        _check(annotation, key)
        entry = key[annotation["item_id"]]
        per_annotator[annotation["annotator"]] += 1
        for criterion, value in annotation.get("scores", {}).items():
            if entry["task"] == "qa_turing":
                value, criterion = float(value != entry["human_is"]), "fooled"
            scores[entry["task"]][entry["model"]][criterion].append(float(value))
            ratings[(entry["task"], criterion)][annotation["item_id"]][annotation["annotator"]] = float(value)
    results = {task: {model: {c: mean_with_ci(v) for c, v in by_c.items()} for model, by_c in by_model.items()}
               for task, by_model in scores.items()}
    agreement: dict = defaultdict(dict)
    for (task, criterion), by_item in ratings.items():
        level = "nominal" if criterion in ("correct", "fooled") else "interval"
        agreement[task][criterion] = krippendorff_alpha(by_item, level=level)
    return {"results": results, "agreement": dict(agreement), "annotators": dict(per_annotator),
            "n_annotations": len(annotations)}
