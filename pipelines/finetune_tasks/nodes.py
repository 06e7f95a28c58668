"""Nodes of the finetuning pipelines `finetune_vqa`, `finetune_caption`, `finetune_itm`: build a
task's examples, finetune the pretrained M6 and the non-pretrained baseline on them, and score
both on the test split. Thin wrappers from parameters and catalog entries to m6_pipeline.tasks."""

from __future__ import annotations

import logging
from pathlib import Path

from tokenizers import Tokenizer

from m6_pipeline.data.file_identity import files_identity, model_identity
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.tasks.caption.data import CaptionJob, caption_examples
from m6_pipeline.tasks.caption.evaluate import evaluate_caption
from m6_pipeline.tasks.finetune.config import FinetuneJob
from m6_pipeline.tasks.finetune.evaluate import load_variants, task_report
from m6_pipeline.tasks.finetune.features import load_patch_features
from m6_pipeline.tasks.finetune.io import examples_from_json, examples_to_json
from m6_pipeline.tasks.finetune.models import pretrained_model_dir
from m6_pipeline.tasks.finetune.run import finetune_variant
from m6_pipeline.tasks.itm.data import ITMJob, itm_examples
from m6_pipeline.tasks.itm.evaluate import evaluate_itm
from m6_pipeline.tasks.precision import resolve_finetune_precision
from m6_pipeline.tasks.records import load_pair_records
from m6_pipeline.tasks.vqa.config import VQAJob
from m6_pipeline.tasks.vqa.data import catalogue_questions, fmiqa_questions
from m6_pipeline.tasks.vqa.evaluate import evaluate_vqa
from m6_pipeline.validation.gate import require_passed

log = logging.getLogger(__name__)

JOBS: dict[str, type[FinetuneJob]] = {"vqa": VQAJob, "caption": CaptionJob, "itm": ITMJob}


def parse_job(task: str):
    def parse(params: dict, pretrain_model_card: dict) -> FinetuneJob:
        job = JOBS[task].model_validate(params)
        job = job.model_copy(update={"pretrained_dir": pretrained_model_dir(job.pretrained_dir, pretrain_model_card)})
        # `precision: auto` resolved here, once for the stage: both variants train under it
        return resolve_finetune_precision(reserved_test_split(job, pretrain_model_card))

    parse.__name__ = f"parse_{task}_job"
    return parse


def reserved_test_split(job: FinetuneJob, pretrain_model_card: dict) -> FinetuneJob:
    """Test on the pairs pretraining left out (the card's downstream_test_fraction); a card
    without it (a model pretrained elsewhere) keeps data.test_fraction, and says so."""
    fraction = pretrain_model_card.get("downstream_test_fraction")
    if not fraction:
        log.warning("%s: the pretrained model's card does not say which pairs it left out; the test "
                    "split (data.test_fraction) may contain pairs it was pretrained on", job.task)
        return job
    data = job.data.model_copy(update={"test_fraction": fraction})
    return job.model_copy(update={"data": data, "test_unseen_in_pretraining": True})


def vqa_examples(job: VQAJob, patch_features_manifest: dict, patch_extractor, features: dict,
                 clean_pairs_validation: dict):
    features_config = FeaturesConfig.model_validate(features)
    if job.data.fmiqa_train is not None or job.data.fmiqa_test is not None:
        if job.data.fmiqa_train is None or job.data.fmiqa_test is None:
            raise ValueError("finetune_vqa: give both data.fmiqa_train and data.fmiqa_test, or neither")
        splits, extra = fmiqa_questions(job.data, patch_extractor, features_config, job.data.seed)
        return examples_to_json(splits, source="fmiqa", test_unseen_in_pretraining=True), extra
    require_passed(clean_pairs_validation, "clean_pairs", features_config.pairs_dir)
    records = load_pair_records(patch_features_manifest["out_dir"])
    splits, extra = catalogue_questions(records, job.data, features_config.pairs_dir, patch_extractor, features_config)
    return examples_to_json(splits, source="catalogue", n_scenes=len(extra),
                            test_unseen_in_pretraining=job.test_unseen_in_pretraining), extra


def caption_task_examples(job: CaptionJob, patch_features_manifest: dict):
    splits, dropped = caption_examples(load_pair_records(patch_features_manifest["out_dir"]), job.data)
    return examples_to_json(splits, source="pairs", dropped=dropped,
                            test_unseen_in_pretraining=job.test_unseen_in_pretraining), {}


def itm_task_examples(job: ITMJob, patch_features_manifest: dict):
    splits = itm_examples(load_pair_records(patch_features_manifest["out_dir"]), job.data)
    return examples_to_json(splits, source="catalogue", test_unseen_in_pretraining=job.test_unseen_in_pretraining), {}


def _features(examples: list, patch_features_manifest: dict, extra_features: dict) -> dict:
    wanted = {e.image_id for e in examples if e.image_id is not None} - extra_features.keys()
    found = load_patch_features(patch_features_manifest["out_dir"], wanted) if wanted else {}
    return {**found, **extra_features}


def finetune(variant: str):
    def run(job: FinetuneJob, task_examples: dict, extra_features: dict, tokenizer: Tokenizer,
            patch_features_manifest: dict) -> tuple[dict, dict]:
        if (skipped := job.not_run(variant)) is not None:
            log.info("%s: the %s variant is not finetuned (%s)", job.task, variant, skipped["not_run"])
            return skipped, skipped
        splits = examples_from_json(task_examples)
        features = _features(splits["train"] + splits["val"], patch_features_manifest, extra_features)
        # a checkpoint of other inputs (rewritten features, another pretrained model) is not resumed
        feature_files = [Path(patch_features_manifest["out_dir"]) / f for f in patch_features_manifest["files"]]
        inputs = {"examples": task_examples["counts"], "features": files_identity(feature_files),
                  "pretrained": model_identity(job.pretrained_dir) if variant == "pretrained" else None}
        return finetune_variant(job, variant, splits["train"], splits["val"], tokenizer, features, inputs)

    run.__name__ = f"finetune_{variant}"
    return run


EVALUATORS = {"vqa": evaluate_vqa, "caption": evaluate_caption, "itm": evaluate_itm}


def evaluate(task: str):
    def run(job: FinetuneJob, task_examples: dict, extra_features: dict, tokenizer: Tokenizer,
            patch_features_manifest: dict, card_pretrained: dict, card_baseline: dict,
            training_pretrained: dict, training_baseline: dict) -> tuple[dict, list[dict]]:
        splits = examples_from_json(task_examples)
        scored = [e for name, examples in splits.items() if name not in ("train", "val") for e in examples]
        features = _features(scored, patch_features_manifest, extra_features)
        cards = {"pretrained": card_pretrained, "baseline": card_baseline}
        trainings = {"pretrained": training_pretrained, "baseline": training_baseline}
        models = load_variants({v: cards[v] for v in job.variants})
        metrics, predictions = EVALUATORS[task](job, models, splits, tokenizer, features)
        metrics = task_report(job, metrics, task_examples.get("test_unseen_in_pretraining", False),
                              {v: trainings[v] for v in job.variants})
        log.info("%s: %s", task, {k: v for k, v in metrics.items() if k in ("accuracy", "scores")})
        return metrics, predictions

    run.__name__ = f"evaluate_{task}"
    return run

