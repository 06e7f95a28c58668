"""Scoring finetuned models on their task's test split: what every task shares (loading the
exported variants, the test examples' features, the task's report, the per-example predictions
that human evaluation batches are made of)."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.pretrained import load_pretrained
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.config import VARIANTS, FinetuneJob
from m6_pipeline.tasks.finetune.decode import generate_texts
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples


def load_variants(cards: dict[str, dict]) -> dict[str, M6Model]:
    return {variant: load_pretrained(card["model_dir"])[0] for variant, card in cards.items()}


def generated_answers(
    job: FinetuneJob, models: dict[str, M6Model], examples: list[TaskExample], tokenizer: Tokenizer,
    features: dict[str, np.ndarray],
) -> dict[str, list[str]]:
    """{variant: greedy output per example}."""
    special = SpecialTokens.of(tokenizer)
    encoded = encode_examples(examples, tokenizer, job.max_prompt_tokens, job.max_target_tokens)
    with job.threads():
        return {
            variant: generate_texts(model, tokenizer, encoded, special, features,
                                    job.decoding.max_new_tokens, job.decoding.batch_size)
            for variant, model in models.items()
        }


def task_report(
    job: FinetuneJob, metrics: dict, test_unseen_in_pretraining: bool, trainings: dict[str, dict]
) -> dict:
    """The task's metrics with what they were measured on: whether the test pairs were unseen in
    pretraining, each variant's validation curve ({variant: training record}) and the precision
    the stage resolved (PrecisionChoice.record())."""
    return {
        **metrics,
        "test_unseen_in_pretraining": test_unseen_in_pretraining,
        "validation_loss": {
            v: {"start": t["validation"][0]["val_loss"], "end": t["validation"][-1]["val_loss"]}
            for v, t in trainings.items()
        },
        "training_curves": {v: t["validation"] for v, t in trainings.items()},
        "precision": job.precision_choice,
        "not_run": {v: job.not_run(v)["not_run"] for v in VARIANTS if v not in job.variants},
    }


def prediction_rows(examples: list[TaskExample], outputs: dict[str, list], **columns) -> list[dict]:
    """One row per test example: its id, image, prompt, reference, meta and each variant's output."""
    rows = []
    for k, example in enumerate(examples):
        row = {"id": example.id, "image_id": example.image_id, "prompt": example.prompt,
               "reference": example.target, "meta": example.meta,
               "outputs": {variant: values[k] for variant, values in outputs.items()}}
        row.update({name: values[k] for name, values in columns.items()})
        rows.append(row)
    return rows
