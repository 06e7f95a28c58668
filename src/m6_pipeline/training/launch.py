"""Launch a pretraining run on Ray Train and collect what it left behind.

The run's name carries a fingerprint of its configuration: re-running the same job finds its own
checkpoints in `storage_path` and resumes (or finishes at once if it was complete); a changed
job starts afresh under a new name. `storage_path` and the token shards may be local paths or URIs
(`s3://bucket/prefix`; m6_pipeline.storage): on a cluster whose nodes share no disk, the workers
read the shards and write the checkpoints there, and the driver reads the final one back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq

from m6_pipeline.model.pretrained import has_weights
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.storage import Location, location
from m6_pipeline.training.checkpoints import STATE_FILE, newest_usable
from m6_pipeline.training.config import PretrainJob
from m6_pipeline.training.loop import train_loop_per_worker

log = logging.getLogger(__name__)


def run_fingerprint(job: PretrainJob) -> str:
    """Hash of everything that changes the trained weights or the checkpoint's layout: the job
    (its plugin included; not its paths or fault injection), the world size, the device kind
    (GPU and CPU runs name their optimizer files differently), and the token shards it reads
    (name, bytes and rows of each file: the shard writer is deterministic, so new data means new
    sizes)."""
    relevant = job.model_dump(
        mode="json", exclude={"report_dir", "fail_at_step", "workers", "checkpoint_root", "shard_dir",
                              "precision_probe_cache"}
    )
    relevant["world"] = job.workers.num_workers
    relevant["device"] = "gpu" if job.workers.use_gpu else "cpu"
    shard_dir = location(job.shard_dir)
    relevant["shards"] = [
        (file.relative_to(shard_dir), file.size(), _rows(file)) for file in shard_dir.glob("*/*.parquet")
    ]
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]


def _rows(file: Location) -> int:
    with file.open_input_file() as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def run_pretraining(job: PretrainJob, special: SpecialTokens) -> tuple[dict, Location]:
    """Train on the current Ray cluster (ray.init already done by the caller or the Kedro hook).

    Returns the final training state (history, validation losses) and the location of the
    final checkpoint (sharded Booster files, train_state.json and the weights for inference:
    model.safetensors, or an MoE model's model.safetensors.index.json and its shards).
    """
    import ray.train
    from ray.train.torch import TorchTrainer

    storage = location(job.workers.storage_path)
    name = f"{job.name}-{run_fingerprint(job)}"
    job = job.model_copy(
        update={
            "shard_dir": location(job.shard_dir).uri,  # absolute: workers may run elsewhere
            "report_dir": str(Path(job.report_dir).resolve()),
            "checkpoint_root": (storage / name).uri,
        }
    )
    Path(job.report_dir).mkdir(parents=True, exist_ok=True)
    workers = job.workers
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**job.model_dump(mode="json"), "special_tokens": asdict(special)},
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers.num_workers,
            use_gpu=workers.use_gpu,
            resources_per_worker=None if workers.use_gpu else {"CPU": workers.threads_per_worker},
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage.path,
            storage_filesystem=None if storage.is_local else storage.filesystem,
            failure_config=ray.train.FailureConfig(max_failures=workers.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=job.keep_checkpoints),
        ),
    )
    log.info("pretraining %s on %d %s workers (checkpoints in %s)", name, workers.num_workers,
             "GPU" if workers.use_gpu else "CPU", storage / name)
    result = trainer.fit()
    final = storage.at(result.checkpoint.path) if result.checkpoint is not None else newest_usable(storage / name)
    if final is None:
        raise RuntimeError(f"run {name} finished without a checkpoint; see the Ray logs under {storage / name}")
    state = json.loads((final / STATE_FILE).read_text())
    if not has_weights(final):
        raise RuntimeError(f"final checkpoint {final} has no weights for inference")
    return state, final
