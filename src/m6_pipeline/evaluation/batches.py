"""Blind, randomised human-evaluation batches from the tasks' test predictions.

An item shows what an annotator judges (prompt, image id, one output, the criteria) and never
which model wrote it; the key (item -> task, model) is written apart, for the results only.
Item order is shuffled with a recorded seed. Kinds, as the paper's human evaluations:
- caption, qa: one output scored for grammar, correctness and richness on 0-5 (Table 6);
- vqa: one answer judged correct or not (Table 5);
- poem: one poem scored for format and fluency on 0-5;
- qa_turing: a human and a model answer to one question, in random order: which is human? (§4.4);
- t2i: one generated image (its output is an image key) scored for quality and faithfulness to
  the prompt on 0-5 (§4.1).

An item's id hashes what the annotator sees (task, source row, model, output): a retrained
model's new output is a new item, so a score never attaches to text it was not given for.
Images are referenced by `image_key` (a hash of the image id, or the generated image's key);
`batch_images` in batch_images.py writes the pixels beside the batch.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

CRITERIA = {
    "caption": {"grammar": [0, 5], "correctness": [0, 5], "richness": [0, 5]},
    "qa": {"grammar": [0, 5], "correctness": [0, 5], "richness": [0, 5]},
    "vqa": {"correct": [0, 1]},
    "poem": {"format": [0, 5], "fluency": [0, 5]},
    "qa_turing": {"human_is": ["A", "B"]},
    "t2i": {"quality": [0, 5], "faithfulness": [0, 5]},
}
IMAGE_OUTPUT_KINDS = ("t2i",)  # kinds whose output is an image key, not text


def _item_id(seed: int, *parts) -> str:
    """An opaque id: a hash of the item's origin and content, so ids reveal nothing about the model."""
    text = "|".join([str(seed), *(p if isinstance(p, str) else json.dumps(p, ensure_ascii=False) for p in parts)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_key(image_id: str | None) -> str | None:
    """The key of a source image (catalogue product, webpage pair, VQA scene) in the batch's images."""
    return None if image_id is None else hashlib.sha256(image_id.encode()).hexdigest()[:16]


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
                item_id = _item_id(seed, task, row["id"], model, output)
                items.append({"item_id": item_id, "kind": task, "prompt": row.get("prompt", ""),
                              "image_id": row.get("image_id"), "image_key": None if task in IMAGE_OUTPUT_KINDS else image_key(row.get("image_id")),
                              "output": output,
                              "question_reference": row.get("reference") if task == "vqa" else None,
                              "criteria": CRITERIA[task]})
                key[item_id] = {"task": task, "model": model, "source_id": row["id"]}
            if task == "qa" and row.get("reference"):
                for model, output in sorted(row["outputs"].items()):
                    human_first = bool(rng.integers(2))
                    a, b = (row["reference"], output) if human_first else (output, row["reference"])
                    item_id = _item_id(seed, "qa_turing", row["id"], model, output, row["reference"])
                    items.append({"item_id": item_id, "kind": "qa_turing", "prompt": row["prompt"],
                                  "image_id": None, "image_key": None, "output": {"A": a, "B": b},
                                  "criteria": CRITERIA["qa_turing"]})
                    key[item_id] = {"task": "qa_turing", "model": model, "source_id": row["id"],
                                    "human_is": "A" if human_first else "B"}
    order = rng.permutation(len(items))
    return [items[i] for i in order], key
