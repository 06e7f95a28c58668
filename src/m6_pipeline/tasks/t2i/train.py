"""Finetuning the pretrained M6 for text-to-image (§4.1): every weight trains, the new code
embedding and code output layer from their initialisation; the loss is the mean cross entropy
of the image codes. The loop is the downstream tasks' `Finetuner` (resumable, a step's batch a
function of (seed, step)); this module supplies the batches and the held-out code loss."""

from __future__ import annotations

import math
from pathlib import Path

from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.trainer import Finetuner, mean_loss
from m6_pipeline.tasks.t2i.config import T2IJob
from m6_pipeline.tasks.t2i.data import T2IRecord, t2i_batch, t2i_example, training_batch



def code_loss(
    model: M6Model, records: list[T2IRecord], special: SpecialTokens, precision: str, target_start: int,
    batch_size: int = 64,
) -> float:
    """Mean cross entropy (nats per code) of the records' codes given their prompts."""
    offset = model.config.code_offset
    batches = [
        t2i_batch([t2i_example(r.prompt_ids, r.codes, special, offset) for r in records[i : i + batch_size]],
                  special.pad, target_start)
        for i in range(0, len(records), batch_size)
    ]
    return mean_loss(model, batches, precision)


class T2ITrainer(Finetuner):
    def __init__(self, job: T2IJob, model: M6Model, special: SpecialTokens, inputs: dict | None = None):
        """inputs: what the run was made from (codes manifest, pretrained model); a checkpoint
        of other inputs is not resumed."""
        identity = {"model": model.config.model_dump(mode="json"), "data": job.data.model_dump(mode="json"),
                    "inputs": inputs or {}}
        super().__init__(model, job.training, job.training.lr, identity, "finetune_t2i")
        self.job, self.special = job, special

    def fit(self, train: list[T2IRecord], val: list[T2IRecord], checkpoint_dir: Path | None = None,
            curves_dir: Path | None = None) -> dict:
        """The history (`loss`: mean code loss per logging window) and the held-out code loss
        (`val_loss`), with the loss of a uniform guess over the codes for scale."""
        data, offset = self.job.data, self.model.config.code_offset

        def batch_of_step(step: int):
            return training_batch(train, step, self.cfg.batch_size, self.cfg.seed, data.prompt_dropout,
                                  self.special, offset, data.target_start)

        def validate() -> float:
            return code_loss(self.model, val, self.special, self.cfg.precision, data.target_start)

        record = super().fit(batch_of_step, validate, checkpoint_dir, curves_dir)
        return {**record, "uniform_code_loss": math.log(self.model.config.n_image_codes)}
