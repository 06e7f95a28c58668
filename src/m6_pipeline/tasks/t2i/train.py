"""Finetuning the pretrained M6 for text-to-image (§4.1): every weight trains, the new code
embedding and code output layer from their initialisation; the loss is the mean cross entropy
of the image codes. A step's batch is a function of (seed, step) and the RNG state is saved
with the checkpoint, so a resumed run continues the uninterrupted one."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from m6_pipeline.model.m6 import IGNORE_INDEX, M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.t2i.config import T2IJob
from m6_pipeline.tasks.t2i.data import T2IRecord, t2i_batch, t2i_example, training_batch
from m6_pipeline.training.config import OptimizerConfig
from m6_pipeline.training.local_state import load_state, save_state
from m6_pipeline.training.loop import _autocast as autocast
from m6_pipeline.training.loop import lr_lambda

log = logging.getLogger(__name__)
CHECKPOINT = "t2i_state.pt"


def _autocast(precision: str):
    return autocast(torch.bfloat16 if precision == "bf16" else None, "cpu")


@torch.no_grad()
def code_loss(
    model: M6Model, records: list[T2IRecord], special: SpecialTokens, precision: str, target_start: int,
    batch_size: int = 64,
) -> float:
    """Mean cross entropy (nats per code) of the records' codes given their prompts."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        batch = t2i_batch(
            [t2i_example(r.prompt_ids, r.codes, special, model.config.code_offset) for r in chunk],
            special.pad, target_start,
        )
        with _autocast(precision):
            loss = model(**batch)
        n = int((batch["labels"] != IGNORE_INDEX).sum())
        total, count = total + float(loss) * n, count + n
    model.train(was_training)
    return total / count


class T2ITrainer:
    def __init__(self, job: T2IJob, model: M6Model, special: SpecialTokens, inputs: dict | None = None):
        """inputs: what the run was made from (codes manifest, pretrained model); a checkpoint
        of other inputs is not resumed."""
        self.job, self.cfg, self.model, self.special = job, job.training, model, special
        self.inputs = inputs or {}
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embeddings" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embeddings" not in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr,
            betas=(0.9, 0.98),
        )
        schedule = OptimizerConfig(
            lr=self.cfg.lr, warmup_steps=self.cfg.warmup_steps, min_lr_ratio=self.cfg.min_lr_ratio
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(schedule, self.cfg.steps))
        self.step, self.history, self.validation = 0, [], []

    def _identity(self) -> dict:
        return {"model": self.model.config.model_dump(mode="json"), "data": self.job.data.model_dump(mode="json"),
                "inputs": self.inputs}

    def save(self, path: Path) -> None:
        save_state(path, {
            "step": self.step, "history": self.history, "validation": self.validation,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "config": self._identity(),
        })

    def resume(self, path: Path) -> bool:
        state = load_state(path, self._identity())
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.history, self.validation = state["step"], state["history"], state["validation"]
        log.info("finetune_t2i: resumed from step %d (%s)", self.step, path)
        return True

    def fit(self, train: list[T2IRecord], val: list[T2IRecord], checkpoint_dir: Path | None = None) -> dict:
        checkpoint = checkpoint_dir / CHECKPOINT if checkpoint_dir is not None else None
        if checkpoint is not None:
            self.resume(checkpoint)
        if not self.validation:
            self.validation.append({"step": 0, "val_code_loss": code_loss(self.model, val, self.special, self.cfg.precision, self.job.data.target_start)})
        self.model.train()
        offset = self.model.config.code_offset
        started, window_loss, n = time.perf_counter(), 0.0, 0
        bar = tqdm(total=self.cfg.steps, initial=self.step, desc="finetune_t2i", mininterval=5)
        while self.step < self.cfg.steps:
            batch = training_batch(
                train, self.step, self.cfg.batch_size, self.cfg.seed, self.job.data.prompt_dropout,
                self.special, offset, self.job.data.target_start,
            )
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.step)  # dropout masks of this step
            with _autocast(self.cfg.precision):
                loss = self.model(**batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            window_loss, n = window_loss + float(loss.detach()), n + 1
            bar.update(1)
            if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                elapsed = time.perf_counter() - started
                self.history.append({
                    "step": self.step, "code_loss": window_loss / n,
                    "lr": self.scheduler.get_last_lr()[0], "examples_per_s": n * self.cfg.batch_size / elapsed,
                })
                bar.set_postfix(loss=f"{window_loss / n:.3f}")
                started, window_loss, n = time.perf_counter(), 0.0, 0
            if self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps:
                val_loss = code_loss(self.model, val, self.special, self.cfg.precision, self.job.data.target_start)
                self.validation.append({"step": self.step, "val_code_loss": val_loss})
                log.info("finetune_t2i step %d: validation code loss %.3f nats", self.step, val_loss)
            if checkpoint is not None and self.step % self.cfg.checkpoint_every == 0:
                self.save(checkpoint)
        bar.close()
        self.model.eval()
        return {
            "history": self.history,
            "validation": self.validation,
            "uniform_code_loss": math.log(self.model.config.n_image_codes),
        }
