"""One rank of the expert-parallel equivalence test (tests/model/test_moe_expert_parallel.py):
runs the MoE layer with its experts sharded over a 2-process gloo group and saves what it saw."""

import argparse

import torch
import torch.distributed as dist

from m6_pipeline.model.moe import ExpertParallel, MoEConfig, MoELayer

from gloo_teardown import leave_group  # run as a script: this directory is on sys.path

D_MODEL, D_FFN = 16, 32


def make_layer(config: MoEConfig, expert_parallel: ExpertParallel | None) -> MoELayer:
    torch.manual_seed(0)
    return MoELayer(D_MODEL, D_FFN, config, init_std=0.3, output_std=0.3, expert_parallel=expert_parallel)


def rank_inputs(rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch, its token mask and the upstream gradient of one rank."""
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(3, 7, D_MODEL, generator=g)
    token_mask = torch.ones(3, 7, dtype=torch.bool)
    token_mask[1, 5 - rank:] = False
    return x, token_mask, torch.randn(3, 7, D_MODEL, generator=g)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", required=True, help="MoEConfig as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{args.store}", rank=args.rank, world_size=2)
    layer = make_layer(MoEConfig.model_validate_json(args.config), ExpertParallel.of(dist.group.WORLD))
    x, token_mask, upstream = rank_inputs(args.rank)
    x.requires_grad_()
    out = layer(x, token_mask)
    (out * upstream).sum().backward()
    torch.save(
        {
            "out": out.detach(), "x_grad": x.grad, "gate_grad": layer.gate.weight.grad,
            "expert_grads": [p.grad for p in layer.expert_parameters()],
            "n_dropped": layer.statistics.n_dropped,
        },
        args.out,
    )
    del layer, out, x, token_mask, upstream
    leave_group()


if __name__ == "__main__":
    main()
