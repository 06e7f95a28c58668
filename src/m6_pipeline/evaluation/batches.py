"""Blind, randomised human-evaluation batches from the tasks' test predictions.

An item shows what an annotator judges (prompt, image id, one output, the criteria) and never
which model wrote it; the key (item -> task, model) is written apart, for the results only.
Item order is shuffled with a recorded seed. Kinds, as the paper's human evaluations:
- caption, qa: one output scored for grammar, correctness and richness on 0-5 (Table 6);
- vqa: one answer judged correct or not (Table 5);
- poem: one poem scored for format and fluency on 0-5;
- qa_turing: a human and a model answer to one question, in random order: which is human? (§4.4)
"""

from __future__ import annotations

import hashlib

import numpy as np

CRITERIA = {
    "caption": {"grammar": [0, 5], "correctness": [0, 5], "richness": [0, 5]},
    "qa": {"grammar": [0, 5], "correctness": [0, 5], "richness": [0, 5]},
    "vqa": {"correct": [0, 1]},
    "poem": {"format": [0, 5], "fluency": [0, 5]},
    "qa_turing": {"human_is": ["A", "B"]},
}


def _item_id(seed: int, *parts: str) -> str:
    """An opaque id: a hash of the item's origin, so ids reveal nothing about the model."""
    return hashlib.sha256("|".join([str(seed), *parts]).encode()).hexdigest()[:12]


def _sample(rows: list[dict], n: int, rng: np.random.Generator) -> list[dict]:
    if len(rows) <= n:
        return rows
    return [rows[i] for i in sorted(rng.choice(len(rows), n, replace=False))]


def build_batch(predictions: dict[str, list[dict]], per_task: dict[str, int], seed: int) -> tuple[list[dict], dict]:
    """(items in shuffled order, key {item_id: {task, model, source_id}}).

    predictions: {task: rows of the task's predictions.json} (rows with `outputs` per model);
    per_task: how many source rows of each task to sample (the paper: 200 VQA questions,
    100 caption images)."""
    rng = np.random.default_rng(seed)
    items, key = [], {}
    for task, rows in sorted(predictions.items()):
        if task not in CRITERIA:
            raise ValueError(f"no human-evaluation criteria for task {task!r}; known: {sorted(CRITERIA)}")
        for row in _sample(rows, per_task.get(task, 50), rng):
            for model, output in sorted(row["outputs"].items()):
                item_id = _item_id(seed, task, row["id"], model)
                items.append({"item_id": item_id, "kind": task, "prompt": row.get("prompt", ""),
                              "image_id": row.get("image_id"), "output": output,
                              "question_reference": row.get("reference") if task == "vqa" else None,
                              "criteria": CRITERIA[task]})
                key[item_id] = {"task": task, "model": model, "source_id": row["id"]}
            if task == "qa" and row.get("reference"):
                for model, output in sorted(row["outputs"].items()):
                    human_first = bool(rng.integers(2))
                    a, b = (row["reference"], output) if human_first else (output, row["reference"])
                    item_id = _item_id(seed, "qa_turing", row["id"], model)
                    items.append({"item_id": item_id, "kind": "qa_turing", "prompt": row["prompt"],
                                  "image_id": None, "output": {"A": a, "B": b},
                                  "criteria": CRITERIA["qa_turing"]})
                    key[item_id] = {"task": "qa_turing", "model": model, "source_id": row["id"],
                                    "human_is": "A" if human_first else "B"}
    order = rng.permutation(len(items))
    return [items[i] for i in order], key
