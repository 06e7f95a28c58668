"""Nodes of the `finetune_t2i` pipeline (§4.1, second stage): finetune the pretrained M6 on
(text, image codes), train the attribute classifier that judges generated images, generate and
evaluate, keeping the images of the first held-out prompts for the human evaluation. Thin
wrappers from parameters and catalog entries to m6_pipeline.tasks.t2i."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer

from m6_pipeline.data.file_identity import files_identity, model_identity
from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.model.pretrained import export_pretrained, load_pretrained
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.models import pretrained_model_dir
from m6_pipeline.tasks.precision import resolve_t2i_precision
from m6_pipeline.tasks.t2i import report
from m6_pipeline.tasks.t2i.attributes import stated_attributes
from m6_pipeline.tasks.t2i.classifier import accuracy, predict, train_classifier
from m6_pipeline.tasks.t2i.config import T2IJob
from m6_pipeline.tasks.t2i.data import T2ISplit, load_code_records, split_records
from m6_pipeline.tasks.t2i.evaluate import evaluate_generation, generate_images, prediction_rows, prompts_as_given
from m6_pipeline.tasks.t2i.train import T2ITrainer
from m6_pipeline.validation.gate import require_passed
from m6_pipeline.vqgan import load_vqgan
from m6_pipeline.vqgan.images import load_images_by_id

log = logging.getLogger(__name__)


def parse_job(finetune_t2i: dict, pretrain_model_card: dict, image_codes_manifest: dict) -> T2IJob:
    """The typed job; the pretrained model is the card's unless `pretrained_dir` names another
    (e.g. the MoE model of pretrain_100b). `precision: auto` is resolved here, once for the
    stage's finetuning and generation."""
    job = T2IJob.model_validate(finetune_t2i)
    job = job.model_copy(update={"pretrained_dir": pretrained_model_dir(job.pretrained_dir, pretrain_model_card)})
    return resolve_t2i_precision(job, image_codes_manifest["n_codes"])


def _split(job: T2IJob, tokenizer: Tokenizer, image_codes_manifest: dict) -> T2ISplit:
    records = load_code_records(image_codes_manifest["codes_dir"], tokenizer, job.data.max_prompt_tokens)
    return split_records(records, job.data)


def finetune(job: T2IJob, tokenizer: Tokenizer, image_codes_manifest: dict) -> tuple[dict, dict]:
    """Finetune every weight of the pretrained M6 with the code embedding and output layer added."""
    split = _split(job, tokenizer, image_codes_manifest)
    log.info("finetune_t2i: %s pairs (train / held-out / unseen combination)", split.counts())
    with job.threads():
        torch.manual_seed(job.training.seed)
        model, pretrained_card = load_pretrained(
            job.pretrained_dir, n_image_codes=image_codes_manifest["codebook_size"], dropout=job.training.dropout
        )
        last = job.data.target_start + image_codes_manifest["n_codes"]
        if last >= model.config.max_positions:
            raise ValueError(
                f"prompt ({job.data.max_prompt_tokens} tokens) + [SEP] + [BOS] + {image_codes_manifest['n_codes']} "
                f"codes need position {last}; the pretrained model has max_positions="
                f"{model.config.max_positions}: lower data.max_prompt_tokens"
            )
        special = SpecialTokens.of(tokenizer)
        started = time.perf_counter()
        # a checkpoint of other inputs (rewritten codes, another pretrained model) is not resumed
        inputs = {"image_codes": image_codes_manifest, "pretrained": model_identity(job.pretrained_dir),
                  "code_files": files_identity(parquet_files(image_codes_manifest["codes_dir"]))}
        training = T2ITrainer(job, model, special, inputs).fit(
            split.train, split.held_out[:256], job.checkpoint_dir, job.curves_dir
        )
    model.config = model.config.model_copy(update={"dropout": 0.0})  # generation runs without it
    card = _export(model, job, pretrained_card, image_codes_manifest)
    training.update(seconds=time.perf_counter() - started, split=split.counts(),
                    precision=job.precision_choice)
    return card, training


def _export(model, job: T2IJob, pretrained_card: dict, image_codes_manifest: dict) -> dict:
    from safetensors.torch import save_model

    job.out_dir.mkdir(parents=True, exist_ok=True)
    weights = job.out_dir / "finetuned.safetensors"
    save_model(model, str(weights))
    card = {
        "task": "text_to_image",
        "pretrained_from": str(job.pretrained_dir),
        "pretraining_run": pretrained_card.get("run"),
        "tokenizer": pretrained_card.get("tokenizer"),
        "special_tokens": pretrained_card.get("special_tokens"),
        "n_codes": image_codes_manifest["n_codes"],
        "max_prompt_tokens": job.data.max_prompt_tokens,
        "target_start": job.data.target_start,
        "codebook_size": image_codes_manifest["codebook_size"],
    }
    card = export_pretrained(weights, model.config, card, job.out_dir)
    weights.unlink()
    return card


def train_attribute_classifier(job: T2IJob, tokenizer: Tokenizer, image_codes_manifest: dict, vqgan_card: dict,
                               clean_pairs_validation: dict):
    """The judge: a CNN trained on the real training images whose text states its attributes."""
    require_passed(clean_pairs_validation, "clean_pairs", vqgan_card["pairs_dir"])
    split = _split(job, tokenizer, image_codes_manifest)
    labelled = [r for r in split.train if r.attributes is not None]
    held_labelled = [r for r in split.held_out if r.attributes is not None]
    if len(labelled) < 20 or not held_labelled:
        raise ValueError(
            f"the attribute judge needs pairs whose text names one colour, category and pattern of "
            f"the catalogue vocabulary (m6_pipeline.tasks.t2i.attributes); found {len(labelled)} "
            f"training and {len(held_labelled)} held-out such pairs. To finetune without this "
            "evaluation: `kedro run --pipeline=finetune_t2i --to-nodes=finetune_t2i`"
        )
    images = load_images_by_id(Path(vqgan_card["pairs_dir"]), [r.id for r in labelled], vqgan_card["resolution"])
    with job.threads():
        classifier = train_classifier(
            images, [r.attributes for r in labelled], job.evaluation.classifier_epochs,
            job.evaluation.classifier_width, seed=job.training.seed,
        )
    held = [r for r in split.held_out if r.attributes is not None]
    held_images = load_images_by_id(Path(vqgan_card["pairs_dir"]), [r.id for r in held], vqgan_card["resolution"])
    pred, _ = predict(classifier, held_images)
    record = {"n_train_images": len(images), "held_out_accuracy": accuracy(pred, [r.attributes for r in held])}
    log.info("attribute classifier: held-out real-image accuracy %s", record["held_out_accuracy"])
    return classifier, record


def evaluate(job: T2IJob, tokenizer: Tokenizer, image_codes_manifest: dict, vqgan_card: dict,
             clean_pairs_validation: dict, t2i_card: dict, attribute_classifier, t2i_training: dict):
    """(metrics, prompt grid, finetuning curve, predictions rows, images table): the rows are the
    first `evaluation.n_human_eval` held-out prompts, as far as the model read them, with the
    paper_top_k image (first sample) the metrics were measured on, under the model name
    "pretrained"."""
    require_passed(clean_pairs_validation, "clean_pairs", vqgan_card["pairs_dir"])
    split = _split(job, tokenizer, image_codes_manifest)
    special = SpecialTokens.of(tokenizer)
    model, _ = load_pretrained(t2i_card["model_dir"])
    vqgan = load_vqgan(Path(vqgan_card["model_dir"]))
    held = [r for r in split.held_out if r.attributes is not None][: job.evaluation.n_prompts]
    unseen = [r for r in split.unseen_combination if r.attributes is not None][: job.evaluation.n_prompts]
    real = load_images_by_id(Path(vqgan_card["pairs_dir"]), [r.id for r in held], vqgan_card["resolution"])
    variants = {"paper_top_k": job.sampling, **job.variants}
    with job.threads():
        metrics, headline_images = evaluate_generation(
            model, vqgan, attribute_classifier, special, held, real, unseen, variants, job.training.seed,
            job.data.target_start, job.evaluation.inception_weights, keep_images_of="paper_top_k",
            precision=job.training.precision,
        )
        figure_prompts = job.evaluation.figure_prompts
        encoded = [e.ids[: job.data.max_prompt_tokens] for e in tokenizer.encode_batch(figure_prompts, add_special_tokens=False)]
        grid_sampling = job.sampling.model_copy(update={"rerank": False})
        images, _ = generate_images(
            model, vqgan, encoded, special, grid_sampling, job.training.seed + 2, job.data.target_start,
            precision=job.training.precision,
        )
    headline = metrics["variants"]["paper_top_k"]["attribute_accuracy"]
    metrics = {
        "attribute_accuracy": {"colour": headline["colour"], "category": headline["category"],
                               "pattern": headline["pattern"]},
        "chance": metrics["chance"],
        "val_code_loss": t2i_training["validation"][-1]["val_loss"],
        "uniform_code_loss": t2i_training["uniform_code_loss"],
        "fid": metrics["variants"]["paper_top_k"]["fid"],
        "fid_note": "FID needs a local Inception file (evaluation.inception_weights); "
                    "classifier_frechet_distance is measured in the attribute classifier's features",
        "figure_prompts": [{"prompt": p, "stated": stated_attributes(p)} for p in figure_prompts],
        **metrics,
        "precision": job.precision_choice,
    }
    human = held[: job.evaluation.n_human_eval]
    shown = prompts_as_given(tokenizer, [r.text for r in human], job.data.max_prompt_tokens)
    rows, image_table = prediction_rows(human, headline_images[: len(human)], shown)
    log.info("finetune_t2i: %d generated images kept for the human evaluation", len(rows))
    title = f"M6 text-to-image, {images.shape[1]} samples per prompt (top-k {job.sampling.top_k})"
    grid = report.prompt_grid(figure_prompts, images, title)
    return metrics, grid, report.finetune_curve(t2i_training), rows, image_table
