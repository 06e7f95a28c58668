"""Captioning metrics on characters (BLEU-4, ROUGE-L, CIDEr-D) for the finetuned variants."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from m6_pipeline.evaluation.text_metrics import bleu4, cider_d, distinct_n, rouge_l
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.tasks.caption.data import CaptionJob
from m6_pipeline.tasks.finetune.evaluate import generated_answers, prediction_rows
from m6_pipeline.tasks.finetune.examples import TaskExample


def caption_scores(captions: list[str], references: list[str]) -> dict[str, float]:
    refs = [[r] for r in references]
    return {"bleu4": bleu4(captions, refs), "rouge_l": rouge_l(captions, refs),
            "cider_d": cider_d(captions, refs), "distinct_2": distinct_n(captions, 2),
            "mean_chars": float(np.mean([len(c) for c in captions]))}


def evaluate_caption(
    job: CaptionJob, models: dict[str, M6Model], splits: dict[str, list[TaskExample]], tokenizer: Tokenizer,
    features: dict[str, np.ndarray],
) -> tuple[dict, list[dict]]:
    test = splits["test"]
    captions = generated_answers(job, models, test, tokenizer, features)
    references = [e.target for e in test]
    metrics = {variant: caption_scores(c, references) for variant, c in captions.items()}
    return {"scores": metrics, "n_test": len(test)}, prediction_rows(test, captions)
