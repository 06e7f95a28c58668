"""Which task each step trains, and the batch every rank reads at that step.

The task of a step is drawn from the mix weights by a seeded generator; text tasks read the text
shards, image tasks the pair shards. The batch of (step, rank) is the slice
[n * world * batch + rank * batch, ... + batch) of its source's stream, where n counts the
earlier steps that read that source: a pure function of the step, so a restarted worker reads
exactly what the uninterrupted run would have read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from m6_pipeline.pretraining.stream import ShardStream
from m6_pipeline.storage import Location, location
from m6_pipeline.pretraining.tasks import (
    IMAGE_TASKS,
    TASKS,
    Example,
    SpecialTokens,
    Task,
    build_example,
    collate,
)


class TaskMix(BaseModel):
    """How the four tasks of §3.3 are mixed, and how their inputs are formed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[Task, float] = Field(
        default_factory=lambda: dict.fromkeys(TASKS, 1.0),
        description="relative share of steps per task",
    )
    mask_proportion: float = Field(0.15, description="share of the text in the masked span (BERT's 15%)")
    max_text_tokens: int = 128

    @model_validator(mode="after")
    def _some_weight(self) -> TaskMix:
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("every task weight is zero; give at least one task a positive weight")
        return self

    @property
    def active_tasks(self) -> list[Task]:
        return [t for t in TASKS if self.weights.get(t, 0) > 0]


def task_schedule(mix: TaskMix, n_steps: int, seed: int) -> list[Task]:
    tasks = mix.active_tasks
    p = np.array([mix.weights[t] for t in tasks], dtype=float)
    drawn = np.random.default_rng([seed, 7]).choice(len(tasks), size=n_steps, p=p / p.sum())
    return [tasks[i] for i in drawn]


def _source(task: Task) -> str:
    return "pairs" if task in IMAGE_TASKS else "text"


def _example(row: dict, task: Task, special: SpecialTokens, mix: TaskMix, rng) -> Example:
    features = None
    if task in IMAGE_TASKS:
        features = np.frombuffer(row["patch_features"], dtype="<f2").reshape(
            row["n_patches"], row["d_feature"]
        )
    return build_example(
        task,
        row["token_ids"],
        special,
        rng,
        patch_features=features,
        mask_proportion=mix.mask_proportion,
        max_text_tokens=mix.max_text_tokens,
    )


class StepBatches:
    """The training batch of any step for one rank."""

    def __init__(
        self,
        shard_dir: str | Path | Location,
        mix: TaskMix,
        special: SpecialTokens,
        *,
        n_steps: int,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
    ) -> None:
        self.mix, self.special, self.seed = mix, special, seed
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.schedule = task_schedule(mix, n_steps, seed)
        needed = {_source(t) for t in mix.active_tasks}
        self.streams = {s: ShardStream(location(shard_dir) / s, "train", seed) for s in sorted(needed)}
        # reads_before[step]: how many earlier steps read the same source
        seen: dict[str, int] = {}
        self.reads_before = []
        for task in self.schedule:
            source = _source(task)
            self.reads_before.append(seen.get(source, 0))
            seen[source] = seen.get(source, 0) + 1

    def batch(self, step: int) -> tuple[Task, dict[str, torch.Tensor]]:
        task = self.schedule[step]
        start = (self.reads_before[step] * self.world_size + self.rank) * self.batch_size
        rows = self.streams[_source(task)].take(start, self.batch_size)
        rng = np.random.default_rng([self.seed, step, self.rank])
        examples = [_example(row, task, self.special, self.mix, rng) for row in rows]
        return task, collate(examples, self.special.pad)


def validation_batches(
    shard_dir: str | Path | Location,
    task: Task,
    special: SpecialTokens,
    mix: TaskMix,
    *,
    n_examples: int,
    batch_size: int,
    rank: int,
    world_size: int,
    seed: int,
) -> list[dict[str, torch.Tensor]]:
    """This rank's share of the first n_examples held-out samples of `task`, masked the same way
    at every evaluation (the masks are seeded by the example's index)."""
    stream = ShardStream(location(shard_dir) / _source(task), "val", seed, shuffle=False)
    # every rank gets as many examples (MoE layers exchange tokens: ranks must step together)
    n_examples = min(n_examples, len(stream)) // world_size * world_size
    mine = list(range(rank, n_examples, world_size))
    examples = [
        _example(row, task, special, mix, np.random.default_rng([seed, 11, index]))
        for index, row in zip(mine, (stream.take(i, 1)[0] for i in mine), strict=True)
    ]
    return [collate(examples[i : i + batch_size], special.pad) for i in range(0, len(examples), batch_size)]
