"""The shared finetuning loop: a resumed run continues the uninterrupted one exactly, and a
checkpoint of another run is set aside, not resumed."""

from __future__ import annotations

import numpy as np
import torch

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.pretraining.tasks import Example, collate
from m6_pipeline.tasks.finetune.config import FinetuneTraining
from m6_pipeline.tasks.finetune.trainer import CHECKPOINT, Finetuner, mean_loss, step_picks

CONFIG = M6Config.of_size("tiny", vocab_size=40, n_patches=2, d_patch_feature=4, max_positions=32, dropout=0.1)
RNG = np.random.default_rng(0)
EXAMPLES = [Example(prefix_text=[7 + i % 5, 3], target=[5, 10 + i % 7, 20 + i % 3, 6],
                    patch_features=RNG.normal(size=(2, 4)).astype(np.float32)) for i in range(40)]


def batch(step: int):
    return collate([EXAMPLES[i] for i in step_picks(len(EXAMPLES), step, 8, seed=1)], pad_id=0)


def trainer(steps: int) -> Finetuner:
    torch.manual_seed(0)
    training = FinetuneTraining(steps=steps, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=4,
                                checkpoint_every=4, log_every=2, precision="fp32")
    return Finetuner(M6Model(CONFIG), training, training.lr, {"run": "test"}, "test")


def validate(t: Finetuner):
    return lambda: mean_loss(t.model, [batch(1000)], "fp32")


def test_resumed_run_equals_the_uninterrupted_one(tmp_path):
    straight = trainer(8)
    record = straight.fit(batch, validate(straight), tmp_path / "a")
    assert record["validation"][-1]["val_loss"] < record["validation"][0]["val_loss"]

    first = trainer(8)
    first.cfg = first.cfg.model_copy(update={"steps": 4})  # stop half-way: the 'failure'
    first.fit(batch, validate(first), tmp_path / "b")
    resumed = trainer(8)
    assert resumed.resume(tmp_path / "b" / CHECKPOINT) and resumed.step == 4
    resumed.fit(batch, validate(resumed), tmp_path / "b")
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b)
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


def test_checkpoint_of_another_run_is_not_resumed(tmp_path):
    t = trainer(4)
    t.fit(batch, validate(t), tmp_path)
    other = trainer(4)
    other.identity = {"run": "another"}
    assert not other.resume(tmp_path / CHECKPOINT) and other.step == 0
