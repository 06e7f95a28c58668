"""ITM accuracy: the variant's probability of 是 against 否 after the query (threshold 0.5)."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from m6_pipeline.model.m6 import M6Model
from m6_pipeline.tasks.finetune.evaluate import candidate_log_probs, prediction_rows
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.itm.data import MATCH, MISMATCH, ITMJob


def evaluate_itm(
    job: ITMJob, models: dict[str, M6Model], test: list[TaskExample], tokenizer: Tokenizer,
    features: dict[str, np.ndarray],
) -> tuple[dict, list[dict]]:
    scores = candidate_log_probs(job, models, test, tokenizer, features, [MATCH, MISMATCH])
    labels = np.array([e.meta["label"] for e in test])
    metrics, outputs = {}, {}
    for variant, log_probs in scores.items():
        p_match = np.exp(log_probs[:, 0])
        predicted = (p_match >= 0.5).astype(int)
        positives = labels == 1
        metrics[variant] = {
            "accuracy": float((predicted == labels).mean()),
            "true_positive_rate": float(predicted[positives].mean()),
            "true_negative_rate": float(1 - predicted[~positives].mean()),
            "n": len(test),
        }
        outputs[variant] = [round(float(p), 4) for p in p_match]
    return {"accuracy": metrics, "n_test": len(test)}, prediction_rows(test, outputs)
