"""One rank of the tensor-parallel equivalence test (tests/model/test_tensor_parallel.py): shards
a tiny M6 over a 2-process gloo group with ColossalAI's ShardFormer and `M6Policy`, runs one
training step on a prefix-LM batch and saves what it saw.

The HybridParallelPlugin itself needs CUDA, so the test drives ShardFormer directly: the same
policy, the same parallel layers and collectives as the plugin applies on GPUs."""

import argparse
import warnings

import numpy as np
import torch
import torch.distributed as dist

from m6_pipeline.model import M6Config, M6Model

from gloo_teardown import leave_group  # run as a script: this directory is on sys.path
from m6_pipeline.pretraining.tasks import SpecialTokens, build_example, collate

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)
LR = 0.5  # SGD: linear in the gradient, so the step carries any gradient mismatch over as is


def make_config() -> M6Config:
    """Block 0 dense, block 1 MoE: the policy shards both blocks' attention and the dense FFN,
    and must leave the MoE experts and gate whole."""
    return M6Config.of_size(
        "tiny", vocab_size=50, n_patches=4, d_patch_feature=8, dropout=0.0, max_positions=64,
        moe={"n_experts": 2, "every": 2},
    )


def make_model() -> M6Model:
    torch.manual_seed(0)
    return M6Model(make_config())


def make_batch() -> dict[str, torch.Tensor]:
    """Image + masked text + target (multimodality_to_text), right-padded to unequal lengths."""
    rng = np.random.default_rng(0)
    examples = [
        build_example("multimodality_to_text", list(rng.integers(10, 50, n)), SPECIAL, rng,
                      patch_features=rng.normal(size=(4, 8)))
        for n in (9, 5, 13)
    ]
    return collate(examples, SPECIAL.pad)


def train_step(model: M6Model) -> dict:
    """Loss, gradients, weights after one SGD step, and the loss after it."""
    model.train()
    batch = make_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    loss = model(**batch)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    optimizer.step()
    with torch.no_grad():
        loss_after = model(**batch)
    return {
        "loss": loss.detach(), "grads": grads, "loss_after": loss_after.detach(),
        "weights": {name: p.detach().clone() for name, p in model.named_parameters()},
        "n_heads": [block.attention.n_heads for block in model.blocks],
    }


def patch_cpu_accelerator_rng() -> None:
    """ColossalAI 0.5.0's CPU accelerator cannot seed: `get_rng_state` passes a device to
    `torch.get_rng_state()`, which takes none (colossalai/accelerator/cpu_accelerator.py:106,
    TypeError), and `manual_seed` raises "not supported for cpu accelerator" (line 130). Every
    parallel linear layer builds a `Randomizer` that calls both in its constructor
    (colossalai/shardformer/layer/utils.py:158-161), so no layer can be sharded on CPU as
    shipped. The device generator of a CPU run is the CPU generator: point both there. The
    Randomizer restores the generator state it read, and seeds only layers built without
    weights and parallel dropout, neither of which M6Policy uses; the sharding, the layers'
    forward and backward and their collectives are ColossalAI's own."""
    from colossalai.accelerator.cpu_accelerator import CpuAccelerator

    CpuAccelerator.get_rng_state = lambda self, device=None: torch.get_rng_state()
    CpuAccelerator.manual_seed = lambda self, seed: torch.manual_seed(seed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Please install")  # apex kernels a CPU never uses
    dist.init_process_group(
        "gloo", init_method=f"file://{args.store}", rank=args.rank, world_size=2
    )
    from colossalai.shardformer import ShardConfig, ShardFormer

    from m6_pipeline.training.tensor_parallel import M6Policy

    patch_cpu_accelerator_rng()
    config = ShardConfig(
        tensor_parallel_process_group=dist.group.WORLD, enable_tensor_parallelism=True
    )
    model, _ = ShardFormer(config).optimize(make_model(), policy=M6Policy())
    result = train_step(model)
    result["qkv_class"] = type(model.blocks[0].attention.qkv).__name__
    torch.save(result, args.out)
    del model, result
    leave_group()


if __name__ == "__main__":
    main()
