"""Nodes of the namespaced pretraining pipelines (`pretrain_base`, `pretrain_10b`): token shards,
the memory/throughput plan, Ray Train + ColossalAI training, and the reports."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from tokenizers import Tokenizer

from m6_pipeline.model.config import PAPER_PARAMS
from m6_pipeline.loop_precision import ffn_shape
from m6_pipeline.precision_choice import DEFAULT_CACHE, choose_precision
from m6_pipeline.model.pretrained import export_pretrained, fetch_weights, load_pretrained
from m6_pipeline.pretraining.shards import write_pair_shards, write_text_shards
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.storage import location
from m6_pipeline.training import planner
from m6_pipeline.training.launch import run_pretraining
from m6_pipeline.training.parameters import PretrainParameters
from m6_pipeline.validation.gate import require_passed
from m6_pipeline.training.report import (
    loss_curve_figure,
    sample_generations,
    train_summary,
    unigram_entropy,
)

log = logging.getLogger(__name__)


def parse_parameters(pretrain: dict) -> PretrainParameters:
    return PretrainParameters.model_validate(pretrain)


def write_token_shards(params: PretrainParameters, clean_text_validation: dict, tokenizer: Tokenizer,
                       patch_features_manifest: dict) -> dict:
    """Tokenize the clean text and the pair texts once, split train/val by id hash; the text only
    once its suite passed on these very files. (The pair texts come from the patch features,
    whose stage passed the pairs' gate.)"""
    require_passed(clean_text_validation, "clean_text", params.text_dir)
    target = location(params.shard_dir)
    with tempfile.TemporaryDirectory(prefix="m6-shards-") as staging:
        # written in place on a local disk; at a URI (every worker of a cluster reads them) staged
        # here, then uploaded over the previous shards
        shard_dir = target.local_path() if target.is_local else Path(staging)
        text = write_text_shards(Path(params.text_dir), tokenizer, shard_dir / "text", params.shards)
        features_dir = Path(patch_features_manifest["out_dir"])
        pairs = write_pair_shards(features_dir, tokenizer, shard_dir / "pairs", params.shards)
        if not target.is_local:
            for source in ("text", "pairs"):
                (target / source).delete()
            target.upload_from(shard_dir)
    log.info("token shards in %s: text %s, pairs %s", target, text, pairs)
    return {"shard_dir": str(params.shard_dir), "text": text, "pairs": pairs, "shards": params.shards.model_dump()}


def plan_pretraining(params: PretrainParameters, tokenizer: Tokenizer, patch_features_manifest: dict) -> dict:
    """Plans for the paper-scale model on its cluster and for this run; stops a run that cannot fit."""
    paper = params.paper_scale
    paper_config = paper.model.config(
        vocab_size=paper.vocab_size, n_patches=paper.n_patches, d_patch_feature=paper.d_patch_feature
    )
    this_config = params.model.config(
        vocab_size=tokenizer.get_vocab_size(),
        n_patches=int(patch_features_manifest["n_patches"]),
        d_patch_feature=int(patch_features_manifest["d_feature"]),
    )
    paper_plan = _plan(paper_config, params.plan["paper"])
    run_spec, precision = _measured_run_spec(params, this_config)
    run_plan = planner.check_fits(_plan(this_config, run_spec))
    return {
        "n_params_full": paper_plan.n_params_full,
        "n_params_paper_reported": PAPER_PARAMS.get(paper.model.size),
        "paper_scale": paper_plan.model_dump(mode="json"),
        "this_run": run_plan.model_dump(mode="json"),
        "precision": precision,
    }


def _measured_run_spec(params: PretrainParameters, config) -> tuple[dict, dict | None]:
    """A CPU run's plan at the precision `auto` picks here, with this machine's measured matmul
    ceiling (the probe's GFLOP/s per worker thread, times the threads) instead of a preset."""
    spec = params.plan["run"]
    if spec["cluster"].get("n_gpus", 1) != 0 or params.workers.use_gpu:
        return spec, None
    shape = ffn_shape(config, params.batch_size * config.max_positions)
    threads = params.workers.threads_per_worker
    cache = Path(params.precision_probe_cache) if params.precision_probe_cache else DEFAULT_CACHE
    choice = choose_precision(params.precision, shape=shape, threads=threads, cache_path=cache)
    if choice.precision == "bf16-master":
        choice = replace(choice, precision="bf16")  # the planner's bf16 covers both
    spec = {**spec, "settings": {**spec["settings"], "precision": choice.precision}}
    if choice.probe is not None:
        threads_total = threads * params.workers.num_workers
        key = "host_peak_gflops_bf16" if choice.precision == "bf16" else "host_peak_gflops_fp32"
        spec["cluster"] = {**spec["cluster"], key: choice.probe[f"{choice.precision}_gflops"] * threads_total}
    return spec, choice.record()


def _plan(config, spec: dict) -> planner.Plan:
    """`spec` is {cluster: ClusterSpec fields, settings: PlanSettings fields}."""
    return planner.plan(config, planner.ClusterSpec(**spec["cluster"]), planner.PlanSettings(**spec["settings"]))


def pretrain(
    params: PretrainParameters, tokenizer: Tokenizer, patch_features_manifest: dict, token_shards: dict, plan: dict
) -> tuple[dict, dict]:
    """Train with Ray Train workers, each boosting the model with the named ColossalAI plugin."""
    model = params.model.config(
        vocab_size=tokenizer.get_vocab_size(),
        n_patches=int(patch_features_manifest["n_patches"]),
        d_patch_feature=int(patch_features_manifest["d_feature"]),
    )
    job = params.job(model)
    special = SpecialTokens.of(tokenizer)
    _check_cluster_resources(job)
    started = time.perf_counter()
    state, final = run_pretraining(job, special)
    state["wall_seconds"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="m6-final-") as staging:
        card = export_pretrained(
            fetch_weights(final, Path(staging)),  # one file, or an MoE model's expert-sharded index
            model,
            {
                "run": final.parent().name,
                "checkpoint": final.uri,
                "special_tokens": special.__dict__,
                "steps": state["step"],
                "tasks": params.mix.active_tasks,
                "downstream_test_fraction": params.shards.downstream_test_fraction,
            },
            params.model_dir,
        )
    return state, card


def _check_cluster_resources(job) -> None:
    """Ray would wait forever for GPUs that are not there: say so instead."""
    import ray

    resources = ray.cluster_resources()
    need = "GPU" if job.workers.use_gpu else "CPU"
    per_worker = 1 if job.workers.use_gpu else job.workers.threads_per_worker
    have = resources.get(need, 0)
    if have < job.workers.num_workers * per_worker:
        raise RuntimeError(
            f"{job.name} needs {job.workers.num_workers} workers x {per_worker} {need}, the Ray "
            f"cluster has {have:g} {need}; run with --env=local on a laptop, or --env=cluster "
            "against a cluster with enough GPUs (conf/cluster/ray.yml gives its address)"
        )


def report_pretraining(
    params: PretrainParameters, tokenizer: Tokenizer, train_state: dict, model_card: dict
):
    """train_summary.json, the loss-curve PNG and sample generations of each task."""
    summary = train_summary(
        train_state,
        vocab_size=tokenizer.get_vocab_size(),
        unigram=unigram_entropy(Path(params.shard_dir)),
        seconds=train_state.get("wall_seconds", float("nan")),
    )
    figure = loss_curve_figure(train_state, summary)
    model, _ = load_pretrained(model_card["model_dir"])
    samples = sample_generations(
        model, tokenizer, Path(params.shard_dir), SpecialTokens.of(tokenizer), params.mix,
        per_task=params.samples_per_task, max_new_tokens=params.mix.max_text_tokens, seed=params.seed,
    )
    for task, row in summary["tasks"].items():
        log.info("%s: val loss %.3f -> %.3f (%.0f%% lower)", task, row["val_loss_initial"],
                 row["val_loss_final"], 100 * row["fall"])
    return summary, figure, samples
