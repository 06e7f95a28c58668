"""One finetuning run of one task for one variant, from examples to an exported model."""

from __future__ import annotations

import logging
import time

import numpy as np
from tokenizers import Tokenizer

from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.config import FinetuneJob, Variant
from m6_pipeline.tasks.finetune.examples import Encoded, TaskExample, batch_of, encode_examples
from m6_pipeline.tasks.finetune.models import export_finetuned, initial_model
from m6_pipeline.tasks.finetune.trainer import Finetuner, mean_loss, step_picks
from m6_pipeline.tasks.precision import resolve_finetune_precision

log = logging.getLogger(__name__)


def by_modality(encoded: list[Encoded]) -> list[list[Encoded]]:
    """The examples with an image, then those without (a batch holds one kind); empty kinds dropped."""
    groups = [[e for e in encoded if e.example.image_id is not None], [e for e in encoded if e.example.image_id is None]]
    return [g for g in groups if g]


def check_fits(job: FinetuneJob, n_patches: int, max_positions: int) -> None:
    longest = job.sequence_length(n_patches)
    if longest > max_positions:
        raise ValueError(
            f"{job.task}: {n_patches} patches + {job.max_prompt_tokens} prompt tokens + [SEP] + "
            f"{job.max_target_tokens} target tokens + [BOS]/[EOS] = {longest} positions; the model has "
            f"{max_positions}: lower max_prompt_tokens or max_target_tokens"
        )


def finetune_variant(
    job: FinetuneJob, variant: Variant, train: list[TaskExample], val: list[TaskExample],
    tokenizer: Tokenizer, features: dict[str, np.ndarray], inputs: dict,
) -> tuple[dict, dict]:
    """Finetune `variant` (pretrained or baseline) on `train`, validating on `val`; returns the
    exported model's card and the training record. inputs: what the data were made from (a
    checkpoint of other inputs is not resumed). The stage resolves `precision: auto` once
    (resolve_finetune_precision) before its variants; a job that comes here unresolved is resolved
    here."""
    if not train or not val:
        raise ValueError(f"{job.task}: {len(train)} training and {len(val)} validation examples; need both")
    job = resolve_finetune_precision(job)
    cfg = job.training
    special = SpecialTokens.of(tokenizer)
    enc_train = encode_examples(train, tokenizer, job.max_prompt_tokens, job.max_target_tokens)
    enc_val = encode_examples(val, tokenizer, job.max_prompt_tokens, job.max_target_tokens)
    with job.threads():
        model, pretrained_card = initial_model(job.pretrained_dir, variant, cfg.dropout, cfg.seed)
        n_patches = next(iter(features.values())).shape[0] if features else 0
        check_fits(job, n_patches, model.config.max_positions)
        val_batches = [batch_of(group[i : i + 64], special, features)
                       for group in by_modality(enc_val) for i in range(0, len(group), 64)]
        groups = by_modality(enc_train)

        def batch_of_step(step: int):
            group = groups[step % len(groups)]  # with and without images alternate
            picks = step_picks(len(group), step, cfg.batch_size, cfg.seed)
            return batch_of([group[i] for i in picks], special, features)

        identity = {"task": job.task, "variant": variant, "model": model.config.model_dump(mode="json"),
                    "training": cfg.model_dump(mode="json"), "inputs": inputs, "n_train": len(train)}
        started = time.perf_counter()
        trainer = Finetuner(model, cfg, cfg.lr_of(variant), identity, f"{job.task}/{variant}")
        record = trainer.fit(
            batch_of_step, lambda: mean_loss(model, val_batches, cfg.precision), job.checkpoint_dir(variant),
            job.curves_of(variant),
        )
    card = export_finetuned(model, job.model_dir(variant), {
        "task": job.task, "variant": variant,
        "pretrained_from": str(job.pretrained_dir) if variant == "pretrained" else None,
        "architecture_of": str(job.pretrained_dir),
        "tokenizer": pretrained_card.get("tokenizer"), "special_tokens": pretrained_card.get("special_tokens"),
        "max_prompt_tokens": job.max_prompt_tokens, "max_target_tokens": job.max_target_tokens,
    })
    record.update(variant=variant, seconds=round(time.perf_counter() - started, 1),
                  n_train=len(train), n_val=len(val), precision=job.precision_choice)
    log.info("%s/%s: validation loss %.3f -> %.3f in %.0f s", job.task, variant,
             record["validation"][0]["val_loss"], record["validation"][-1]["val_loss"], record["seconds"])
    return card, record

