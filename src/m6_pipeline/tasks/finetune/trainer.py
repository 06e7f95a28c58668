"""A resumable single-process finetuning loop: AdamW (no decay on embeddings, norms, biases),
warm-up then cosine, gradient clipping, bf16 autocast where the stage chose bf16. A step's
batch is a function of (seed, step), dropout is seeded per step and the state is saved with the
checkpoint, so a resumed run continues the uninterrupted one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from m6_pipeline.loop_precision import autocast
from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model
from m6_pipeline.tasks.finetune.config import FinetuneTraining
from m6_pipeline.tracking import Curves
from m6_pipeline.training.config import OptimizerConfig
from m6_pipeline.training.local_state import load_state, save_state
from m6_pipeline.training.loop import lr_lambda

log = logging.getLogger(__name__)
CHECKPOINT = "finetune_state.pt"

Batch = dict[str, torch.Tensor]


def step_picks(n_examples: int, step: int, batch_size: int, seed: int) -> np.ndarray:
    """The example indices of `step`: a function of (seed, step) alone."""
    return np.random.default_rng([seed, step]).integers(0, n_examples, batch_size)


@torch.no_grad()
def mean_loss(model: M6Model, batches: list[Batch], precision: str) -> float:
    """Token-weighted mean cross entropy (nats) over the target tokens of `batches`."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        with autocast(precision):
            loss = model(**batch)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        total, count = total + float(loss) * n, count + n
    model.train(was_training)
    return total / max(count, 1)


class Finetuner:
    def __init__(self, model: M6Model, training: FinetuneTraining, lr: float, identity: dict, name: str):
        """identity: what the run is made of (config, data, inputs); a checkpoint of another
        identity is set aside, not resumed. name labels the progress bar and the log."""
        self.model, self.cfg, self.identity, self.name = model, training, identity, name
        params = list(model.named_parameters())
        decay = [p for n, p in params if p.ndim >= 2 and "embeddings" not in n]
        no_decay = [p for n, p in params if not (p.ndim >= 2 and "embeddings" not in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": training.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.98), fused=True,  # one kernel, not a third of a CPU step in per-tensor ops
        )
        schedule = OptimizerConfig(lr=lr, warmup_steps=training.warmup_steps, min_lr_ratio=training.min_lr_ratio)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(schedule, training.steps))
        self.step, self.history, self.validation = 0, [], []

    def save(self, path: Path) -> None:
        save_state(path, {
            "step": self.step, "history": self.history, "validation": self.validation,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "config": self.identity,
        })

    def resume(self, path: Path) -> bool:
        state = load_state(path, self.identity)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.history, self.validation = state["step"], state["history"], state["validation"]
        log.info("%s: resumed from step %d (%s)", self.name, self.step, path)
        return True

    def fit(
        self, batch_of_step: Callable[[int], Batch], validate: Callable[[], float],
        checkpoint_dir: Path | None = None, curves_dir: Path | None = None,
    ) -> dict:
        """Train to `training.steps`; `validate()` gives the held-out loss at step 0, every
        eval_every steps and at the end. Returns the loss history and validation curve; the
        same go to dvclive in `curves_dir` (m6_pipeline.tracking)."""
        checkpoint = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
        if checkpoint is not None:
            self.resume(checkpoint)
        curves = Curves(curves_dir, self.step if self.step else None)
        if not self.validation:
            self.validation.append({"step": 0, "val_loss": validate()})
            curves.log(0, {"val/loss": self.validation[-1]["val_loss"]})
        self.model.train()
        started, window, n = time.perf_counter(), 0.0, 0
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc=self.name, mininterval=5)
        while self.step < self.cfg.steps:
            batch = batch_of_step(self.step)
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)  # this step's dropout masks
            with autocast(self.cfg.precision):
                loss = self.model(**batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            window, n = window + float(loss.detach()), n + 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                seconds = time.perf_counter() - started
                self.history.append({
                    "step": self.step, "loss": window / n, "lr": self.scheduler.get_last_lr()[0],
                    "examples_per_s": n * self.cfg.batch_size / seconds,
                })
                curves.log(self.step, {f"train/{k}": v for k, v in self.history[-1].items() if k != "step"})
                bar.set_postfix(loss=f"{window / n:.3f}")
                started, window, n = time.perf_counter(), 0.0, 0
            if self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps:
                self.validation.append({"step": self.step, "val_loss": validate()})
                curves.log(self.step, {"val/loss": self.validation[-1]["val_loss"]})
                log.info("%s step %d: validation loss %.3f", self.name, self.step, self.validation[-1]["val_loss"])
            if checkpoint is not None and (self.step % self.cfg.checkpoint_every == 0 or self.step == self.cfg.steps):
                self.save(checkpoint)
        bar.close()
        curves.end()
        self.model.eval()
        return {"history": self.history, "validation": self.validation}
