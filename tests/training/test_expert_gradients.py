"""Expert gradients in one process: scaled to DDP's mean over ranks, and clipped by their own
norm apart from the dense parameters (the paper's local clipping)."""

import torch
from torch import nn

from m6_pipeline.model.moe import ExpertParallel
from m6_pipeline.training.experts import ExpertGroups, clip_locally, sync_expert_gradients


def test_expert_gradients_take_the_mean_over_ranks():
    expert = nn.Parameter(torch.zeros(3))
    expert.grad = torch.full((3,), 4.0)
    groups = ExpertGroups(ExpertParallel(None, 1, 0), None, 1, 0, world_size=4)
    sync_expert_gradients([expert], groups)
    assert torch.equal(expert.grad, torch.ones(3))


def test_local_clipping_leaves_each_group_its_own_norm():
    dense, expert = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    dense.grad = torch.tensor([0.3, 0.4])  # norm 0.5: under the limit, untouched
    expert.grad = torch.tensor([30.0, 40.0])  # norm 50: clipped to 1 on its own
    dense_norm, expert_norm = clip_locally([dense], [expert], max_norm=1.0)
    assert (dense_norm, expert_norm) == (0.5, 50.0)
    assert torch.allclose(dense.grad, torch.tensor([0.3, 0.4]))
    assert torch.allclose(expert.grad.norm(), torch.tensor(1.0), atol=1e-5)
    # a global norm (50.0) would have shrunk the dense gradients 100-fold
