"""bf16 weights with fp32 master weights: the update happens in fp32, the weights are its bf16
rounding, and the state dict carries the masters so a resume is exact."""

import copy

import numpy as np
import torch

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.pretraining.tasks import build_example, collate
from m6_pipeline.training.precision import MasterWeightAdamW
from tests.pretraining.synthetic_shards import SPECIAL, arithmetic_run


def batch(seed: int):
    rng = np.random.default_rng(seed)
    return collate([build_example("language_modelling", arithmetic_run(rng, 60), SPECIAL, rng)
                    for _ in range(8)], SPECIAL.pad)


def model_and_optimizer():
    torch.manual_seed(0)
    model = M6Model(M6Config.of_size("tiny", vocab_size=60, dropout=0.0, max_positions=32))
    model = model.to(torch.bfloat16)
    return model, MasterWeightAdamW(model, max_grad_norm=1.0, lr=3e-3, fused=True)


def train(model, optimizer, steps: range) -> list[float]:
    losses = []
    for step in steps:
        loss = model(**batch(step))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_masters_are_fp32_and_weights_their_rounding_and_loss_falls():
    model, optimizer = model_and_optimizer()
    losses = train(model, optimizer, range(40))
    assert all(m.dtype == torch.float32 for m in optimizer.masters)
    for master, param in zip(optimizer.masters, model.parameters(), strict=True):
        assert param.dtype == torch.bfloat16 and torch.equal(param, master.to(torch.bfloat16))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_state_dict_round_trip_resumes_exactly():
    model, optimizer = model_and_optimizer()
    train(model, optimizer, range(5))
    saved_model = {k: v.clone() for k, v in model.state_dict().items()}
    saved_optimizer = copy.deepcopy(optimizer.state_dict())  # as written to disk
    expected = train(model, optimizer, range(5, 10))

    resumed, resumed_optimizer = model_and_optimizer()
    resumed.load_state_dict(saved_model)
    resumed_optimizer.load_state_dict(saved_optimizer)
    assert train(resumed, resumed_optimizer, range(5, 10)) == expected
