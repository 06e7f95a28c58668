"""ITM accuracy from the likelihood ratio s = log p(query | image) - log p(query): the
threshold that is most accurate on the calibration pairs is applied to the test pairs. The
area under the ROC curve is reported too (threshold-free)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.stats import rankdata
from tokenizers import Tokenizer

from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.decode import target_log_likelihoods
from m6_pipeline.tasks.finetune.evaluate import prediction_rows
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples
from m6_pipeline.tasks.itm.data import ITMJob


def match_scores(job: ITMJob, model: M6Model, pairs: list[TaskExample], tokenizer: Tokenizer,
                 features: dict[str, np.ndarray]) -> np.ndarray:
    """[n] log p(query | image) - log p(query) per pair."""
    special = SpecialTokens.of(tokenizer)
    without = [replace(p, image_id=None) for p in pairs]
    encoded = encode_examples(pairs + without, tokenizer, job.max_prompt_tokens, job.max_target_tokens)
    with job.threads():
        ll = target_log_likelihoods(model, encoded, special, features, job.decoding.batch_size)
    return ll[: len(pairs)] - ll[len(pairs) :]


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold (midpoint between sorted scores) of highest accuracy on (scores, labels)."""
    ordered = np.sort(scores)
    candidates = np.concatenate([[ordered[0] - 1], (ordered[:-1] + ordered[1:]) / 2, [ordered[-1] + 1]])
    accuracy = [((scores > t) == labels).mean() for t in candidates]
    return float(candidates[int(np.argmax(accuracy))])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    positives, negatives = int(labels.sum()), int((1 - labels).sum())
    if not positives or not negatives:
        raise ValueError("ROC AUC needs both positive and negative pairs")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def evaluate_itm(
    job: ITMJob, models: dict[str, M6Model], splits: dict[str, list[TaskExample]], tokenizer: Tokenizer,
    features: dict[str, np.ndarray],
) -> tuple[dict, list[dict]]:
    test, calibration = splits["test"], splits["calibration"]
    labels = np.array([e.meta["label"] for e in test])
    cal_labels = np.array([e.meta["label"] for e in calibration])
    metrics, outputs = {}, {}
    for variant, model in models.items():
        threshold = best_threshold(match_scores(job, model, calibration, tokenizer, features), cal_labels)
        scores = match_scores(job, model, test, tokenizer, features)
        predicted = (scores > threshold).astype(int)
        metrics[variant] = {
            "accuracy": float((predicted == labels).mean()), "roc_auc": roc_auc(scores, labels),
            "true_positive_rate": float(predicted[labels == 1].mean()),
            "true_negative_rate": float(1 - predicted[labels == 0].mean()),
            "threshold": threshold, "n": len(test),
        }
        outputs[variant] = [round(float(s), 3) for s in scores]
    return {"accuracy": metrics, "n_test": len(test), "n_calibration": len(calibration)}, prediction_rows(test, outputs)
