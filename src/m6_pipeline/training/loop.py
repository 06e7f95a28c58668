"""The training loop that runs inside every Ray Train worker.

Ray Train has already initialised torch.distributed (gloo on CPU, nccl on GPU), so the
ColossalAI Booster is built directly here. Checkpoints go through the Booster (sharded model and
optimizer) and are reported to Ray Train; a restarted worker group resumes from the last one.
Everything a step does is a function of (seed, step, rank) — its batch, its masks, its dropout —
so the loss curve after a resume equals the uninterrupted one. Each step record carries the
pre-clip gradient norm of whoever clipped (training/clipping.py). The final checkpoint carries
the weights for inference: one file, or for an MoE model the expert-sharded form, written by the
ranks that hold the experts (model/sharded_weights.py).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from m6_pipeline.allocator import retain_freed_memory
from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model
from m6_pipeline.model.sharded_weights import save_expert_sharded
from m6_pipeline.loop_precision import ffn_shape
from m6_pipeline.precision_choice import DEFAULT_CACHE, PrecisionChoice, choose_precision
from m6_pipeline.pretraining.batches import StepBatches, validation_batches
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.storage import location
from m6_pipeline.tracking import Curves
from m6_pipeline.training import experts as ep
from m6_pipeline.training.checkpoints import COMPLETE, STATE_FILE, newest_usable
from m6_pipeline.training.clipping import clip_before_step, clip_plan, norm_after_step
from m6_pipeline.training.config import OptimizerConfig, PretrainJob
from m6_pipeline.training.lazy_init import build_model
from m6_pipeline.training.moe_metrics import MoEMeter
from m6_pipeline.training.plugins import autocast_dtype, make_plugin
from m6_pipeline.training.optimizers import make_optimizer

log = logging.getLogger(__name__)
FINAL_WEIGHTS = "model.safetensors"


def _quiet_known_warnings() -> None:
    """ColossalAI warns at import about optional CUDA extensions (apex, tensornvme) that a CPU
    run never uses; those lines would bury the progress lines."""
    import warnings

    for pattern in ("Please install", ".*broadcast_buffers.*", ".*find_unused_parameters.*"):
        warnings.filterwarnings("ignore", message=pattern)


def lr_lambda(config: OptimizerConfig, total_steps: int):
    """Linear warm-up, then cosine decay to lr * min_lr_ratio."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine

    return factor


def _autocast(dtype, device: str):
    return torch.autocast(device, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: M6Model, val: dict[str, list], dtype, device: torch.device) -> dict[str, float]:
    """Mean validation loss (nats per target token) per task over every rank's share."""
    model.eval()
    out = {}
    for task, batches in val.items():
        totals = torch.zeros(2, dtype=torch.float64)
        for batch in batches:
            batch = _to(batch, device)
            with _autocast(dtype, device.type):
                loss = model(**batch)
            n = (batch["labels"] != IGNORE_INDEX).sum()
            totals += torch.stack([loss.double().cpu() * n.cpu(), n.double().cpu()])
        if dist.is_initialized():
            totals = totals.to(device)
            dist.all_reduce(totals)
            totals = totals.cpu()
        out[task] = float(totals[0] / totals[1])
    model.train()
    return out


def train_loop_per_worker(job_dict: dict) -> None:
    import ray.train
    from colossalai.booster import Booster

    _quiet_known_warnings()
    job_dict = dict(job_dict)
    special = SpecialTokens(**job_dict.pop("special_tokens"))
    job = PretrainJob.model_validate(job_dict)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = torch.device("cuda", context.get_local_rank()) if job.workers.use_gpu else torch.device("cpu")
    if not job.workers.use_gpu:
        torch.set_num_threads(job.workers.threads_per_worker)
        retain_freed_memory()
    precision = _resolve_precision(job, device)
    job = job.model_copy(update={"precision": precision.precision})

    plugin = make_plugin(
        job.plugin, use_gpu=job.workers.use_gpu, precision=job.precision, model=job.model,
        optimizer=job.optimizer,
    )
    clipping = clip_plan(job.plugin, job.optimizer, precision=job.precision, moe=job.model.moe is not None)
    data_rank, data_world = _data_parallel(plugin, rank, world)
    groups = _expert_groups(job, plugin)
    torch.manual_seed(job.seed)
    # lazy under the sharding plugins: the Booster materialises only this rank's part
    model = build_model(job.model, job.plugin.name, seed=job.seed, expert_parallel=groups.ep if groups else None)
    experts = model.expert_parameters()
    local_experts = groups is not None and job.plugin.name == "torch_ddp"  # our grads, clipping, IO
    if local_experts:
        ep.exclude_from_ddp(model, experts)
    expert_ids = {id(p) for p in experts}
    dense = [p for p in model.parameters() if id(p) not in expert_ids]
    # Gemini needs every parameter in each backward (text-only steps leave the patch projection idle)
    model.embeddings.idle_patch_projection_gets_gradient = job.plugin.name == "gemini"
    optimizer = make_optimizer(model, job.optimizer, plugin=job.plugin.name, precision=job.precision)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(job.optimizer, job.steps))
    booster = Booster(plugin=plugin)
    model, optimizer, _, _, scheduler = booster.boost(model, optimizer, lr_scheduler=scheduler)
    dtype = autocast_dtype(job.plugin, job.precision)

    batches = StepBatches(
        job.shard_dir, job.mix, special, n_steps=job.steps, batch_size=job.batch_size,
        rank=data_rank, world_size=data_world, seed=job.seed,
    )
    val = {
        task: validation_batches(
            job.shard_dir, task, special, job.mix, n_examples=job.val_examples_per_task,
            batch_size=job.batch_size, rank=data_rank, world_size=data_world, seed=job.seed,
        )
        for task in job.mix.active_tasks
    }

    state = {"step": 0, "history": [], "validation": [], "precision": precision.record()}
    meter = MoEMeter(model.unwrap(), job.model.moe.n_experts) if groups is not None else None
    checkpoint = _checkpoint_to_resume(job)
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            booster.load_model(model, str(Path(directory) / "model"))
            if local_experts:
                ep.load_expert_shard(model.unwrap(), experts, Path(directory), groups)
                optimizer.load_state_dict(torch.load(_rank_optimizer_file(Path(directory), rank)))
            else:
                booster.load_optimizer(optimizer, str(Path(directory) / _optimizer_file(job)))
            booster.load_lr_scheduler(scheduler, str(Path(directory) / "lr_scheduler.pt"))
            state = json.loads((Path(directory) / STATE_FILE).read_text())
        state.setdefault("resumed_at", []).append(state["step"])
        if state.get("precision", {}).get("precision", precision.precision) != precision.precision:
            log.warning("rank %d resumes in %s; the run began in %s", rank, precision.precision,
                        state["precision"]["precision"])
        state["precision"] = precision.record()
        if meter is not None:
            meter.restore(state["moe_running_load"])
        log.info("rank %d resumed at step %d", rank, state["step"])
    else:
        state["validation"].append({"step": 0, **evaluate(model.unwrap(), val, dtype, device)})

    # rank 0's dvclive curves; rows are the 0-based step index, so a resume keeps those before it
    curves = Curves(Path(job.report_dir) / "dvclive" if rank == 0 else None,
                    state["step"] - 1 if checkpoint is not None else None)
    model.train()
    window_tokens, window_start = 0, time.perf_counter()
    for step in range(state["step"], job.steps):
        if job.fail_at_step == step and rank == world - 1:
            _inject_failure_once(job)
        torch.manual_seed(job.seed * 1_000_003 + step * data_world + data_rank)  # dropout
        task, batch = batches.batch(step)
        batch = _to(batch, device)
        with _autocast(dtype, device.type):
            loss = model(**batch)
        booster.backward(loss, optimizer)
        if local_experts:
            ep.sync_expert_gradients(experts, groups)
        norms = clip_before_step(clipping, dense, experts)  # {} where the optimizer clips in step()
        optimizer.step()
        norms.update(norm_after_step(clipping, optimizer))
        optimizer.zero_grad()
        scheduler.step()

        tokens = int(batch["lengths"].sum()) * data_world
        window_tokens += tokens
        record = {"step": step, "task": task, "loss": loss.item(), "lr": scheduler.get_last_lr()[0], **norms}
        if meter is not None:
            record.update(meter.step())  # loss = the LM loss; the router losses beside it
        if (step + 1) % job.log_every == 0 or step + 1 == job.steps:
            elapsed = time.perf_counter() - window_start
            record["tokens_per_s"] = window_tokens / elapsed
            window_tokens, window_start = 0, time.perf_counter()
            if rank == 0:
                _progress(job, record, elapsed / job.log_every)
        state["history"].append(record)
        curves.log(step, _train_metrics(record))
        if (step + 1) % job.eval_every == 0 or step + 1 == job.steps:
            losses = evaluate(model.unwrap(), val, dtype, device)
            state["validation"].append({"step": step + 1, **losses})
            if meter is not None:
                state.setdefault("expert_load", []).append({"step": step + 1, **meter.window_load()})
            curves.log(step, {metric: value for name, loss in losses.items()
                              for metric, value in ((f"val/{name}/loss", loss), (f"val/{name}/neg_log_perplexity", -loss))})
        state["step"] = step + 1
        if (step + 1) % job.checkpoint_every == 0 or step + 1 == job.steps:
            final = step + 1 == job.steps
            if meter is not None:
                state["moe_running_load"] = meter.state()
            _save_and_report(
                booster, model, optimizer, scheduler, state, rank, step + 1, record, final, job,
                groups, local_experts,
            )
    curves.end()


def _resolve_precision(job: PretrainJob, device: torch.device) -> PrecisionChoice:
    """`auto` measured on each rank at the run's widest common layer (the FFN's first linear);
    the ranks then agree: bf16 only if every rank chose it, so one slow host sets the pace."""
    shape = ffn_shape(job.model, job.batch_size * job.model.max_positions)
    cache = Path(job.precision_probe_cache) if job.precision_probe_cache else DEFAULT_CACHE
    choice = choose_precision(
        job.precision, shape=shape, threads=job.workers.threads_per_worker, device=device.type,
        cache_path=cache,
    )
    if job.precision != "auto" or not dist.is_initialized():
        return choice
    votes = torch.tensor([1.0 if choice.precision == "bf16" else 0.0], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MIN)
    if votes.item() == 0.0 and choice.precision == "bf16":
        return replace(choice, precision="fp32", reason=choice.reason + "; another rank measured bf16 slow: fp32")
    return choice


def _data_parallel(plugin, rank: int, world: int) -> tuple[int, int]:
    """(rank, size) of the data-parallel group. The ranks of one tensor-parallel group compute
    one batch together, so they draw the same batch and the same dropout seed (dropout after a
    row-parallel layer must agree across them); without TP every rank is its own."""
    if getattr(plugin, "tp_size", 1) > 1:
        return dist.get_rank(plugin.dp_group), plugin.dp_size
    return rank, world


def _checkpoint_to_resume(job: PretrainJob):
    """The checkpoint Ray Train hands back after a restart, else the newest complete one in the
    run's storage directory. Ray registers a checkpoint when its controller next polls the
    workers, so a worker that dies right after reporting can leave a written checkpoint that
    Ray never registered; the run directory also lets a restarted `kedro run` resume."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None or job.checkpoint_root is None:
        return checkpoint
    found = [None]
    if not dist.is_initialized() or dist.get_rank() == 0:
        newest = newest_usable(job.checkpoint_root)  # sets a damaged one aside
        found = [newest.uri if newest else None]
    if dist.is_initialized():
        dist.broadcast_object_list(found, src=0)  # every rank resumes from the same step
    if found[0] is None:
        return None
    newest = location(found[0])
    return ray.train.Checkpoint(path=newest.path, filesystem=newest.filesystem)


def _expert_groups(job: PretrainJob, plugin) -> ep.ExpertGroups | None:
    """The expert-parallel groups: the MoE plugin's own on GPUs, else built over the workers."""
    if job.model.moe is None:
        return None
    if hasattr(plugin, "ep_group"):
        dp_size = dist.get_world_size(plugin.moe_dp_group)
        return ep.ExpertGroups(
            ep.ExpertParallel.of(plugin.ep_group), plugin.moe_dp_group, dp_size,
            dist.get_rank(plugin.moe_dp_group), dist.get_world_size(),
        )
    return ep.build_expert_groups(job.plugin.ep_size)


def _rank_optimizer_file(directory: Path, rank: int) -> Path:
    """With local experts every rank's optimizer state differs (its experts' moments)."""
    return directory / "optimizer-ranks" / f"rank-{rank:05d}.pt"


def _optimizer_file(job: PretrainJob) -> str:
    """ColossalAI 0.5.0 cannot load a sharded optimizer on CPU (its loader synchronises the
    accelerator, which the CPU accelerator refuses), so CPU runs keep one optimizer file."""
    return "optimizer" if job.workers.use_gpu else "optimizer.bin"


def _save_and_report(
    booster, model, optimizer, scheduler, state, rank: int, step: int, record, final: bool,
    job: PretrainJob, groups: ep.ExpertGroups | None = None, local_experts: bool = False,
) -> None:
    """A sharded Booster checkpoint reported to Ray Train (files of all ranks are merged).
    With local experts, each expert shard and each rank's optimizer state beside it.
    The final one also carries the weights for inference: one safetensors file, or with experts
    (`groups`) the expert-sharded form, each shard written by a rank that holds it."""
    import ray.train
    from safetensors.torch import save_file, save_model

    with tempfile.TemporaryDirectory() as directory:
        booster.save_model(model, str(Path(directory) / "model"), shard=True)
        if local_experts:
            experts = model.unwrap().expert_parameters()
            ep.save_expert_shard(model.unwrap(), experts, Path(directory), groups)
            path = _rank_optimizer_file(Path(directory), rank)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(optimizer.state_dict(), path)
        else:
            booster.save_optimizer(
                optimizer, str(Path(directory) / _optimizer_file(job)), shard=job.workers.use_gpu
            )
        booster.save_lr_scheduler(scheduler, str(Path(directory) / "lr_scheduler.pt"))
        if final and groups is not None:
            save_expert_sharded(model.unwrap(), Path(directory), dense=rank == 0, experts=groups.saves_experts)
        elif final and job.plugin.tp_size > 1:
            # under tensor parallelism state_dict() gathers the shards: a collective of all ranks
            weights = model.unwrap().state_dict()
            if rank == 0:
                weights = {name: tensor.contiguous() for name, tensor in weights.items()}
                save_file(weights, str(Path(directory) / FINAL_WEIGHTS))
        elif final and rank == 0:
            save_model(model.unwrap(), str(Path(directory) / FINAL_WEIGHTS))
        if dist.is_initialized():
            dist.barrier()  # every rank's shards are written before the state marks it complete
        if rank == 0:
            (Path(directory) / STATE_FILE).write_text(json.dumps(state))
        has_files = any(Path(directory).rglob("*.*"))
        ray.train.report(
            {"step": step, "loss": record["loss"]},
            checkpoint=ray.train.Checkpoint.from_directory(directory) if has_files else None,
            checkpoint_dir_name=f"step-{step:07d}",
        )
    # report uploads synchronously on every rank and is a barrier: the directory is whole now
    if rank == 0 and job.checkpoint_root is not None:
        stored = location(job.checkpoint_root) / f"step-{step:07d}"
        if stored.is_dir():
            (stored / COMPLETE).write_text("all ranks uploaded\n")


def _progress(job: PretrainJob, record: dict, seconds_per_step: float) -> None:
    """One line per logging window on rank 0 (Ray forwards it to the driver's console)."""
    left = (job.steps - record["step"] - 1) * seconds_per_step
    moe = f"drop {record['drop_rate']:.1%}  aux {record['aux_loss']:.3f}  " if "drop_rate" in record else ""
    norm = f"grad norm {record['grad_norm']:.2f}  " if record.get("grad_norm") is not None else ""
    print(
        f"[{job.name}] step {record['step'] + 1}/{job.steps}  {record['task']:<22} "
        f"loss {record['loss']:.3f}  {moe}{norm}{record['tokens_per_s']:,.0f} tokens/s  "
        f"lr {record['lr']:.2e}  about {left / 60:.1f} min left",
        file=sys.__stdout__,  # Ray Train V2 patches print() to log *and* tee: one copy only
        flush=True,
    )


def _inject_failure_once(job: PretrainJob) -> None:
    """Tests kill a worker mid-run: the process exits without cleanup, as a crashed node would."""
    marker = Path(job.report_dir) / f".failure-injected-{job.name}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("worker killed once by fail_at_step\n")
        os._exit(1)


def _train_metrics(record: dict) -> dict[str, float]:
    metrics = {f"train/{record['task']}/loss": record["loss"], "train/lr": record["lr"]}
    if "tokens_per_s" in record:
        metrics["train/tokens_per_s"] = record["tokens_per_s"]
    return metrics
