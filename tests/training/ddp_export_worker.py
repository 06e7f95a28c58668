"""One rank of tests/training/test_clipping_and_export_gloo.py: trains a tiny M6 with ColossalAI's
TorchDDPPlugin as the loop does (fp32, the experts sharded over the ranks for `--moe`), clipping
each step through training/clipping.py; with `--moe` it then exports the expert-sharded form,
loads it back at expert-parallel sizes 2 and 1, writes it again at size 4 and loads that at 2,
and saves the logits of each beside the trained model's."""

import argparse
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.m6 import IGNORE_INDEX
from m6_pipeline.model.moe import ExpertParallel
from m6_pipeline.model.pretrained import export_pretrained, load_pretrained
from m6_pipeline.model.sharded_weights import INDEX, save_expert_sharded
from m6_pipeline.training import experts as ep
from m6_pipeline.training.clipping import clip_before_step, clip_plan
from m6_pipeline.training.config import OptimizerConfig, PluginConfig
from m6_pipeline.training.plugins import make_plugin

sys.path.insert(0, str(Path(__file__).parents[1] / "model"))
from gloo_teardown import leave_group  # noqa: E402

MAX_NORM = 0.005  # under the gradients' norms at initialisation: clipping bites
N_EXPERTS = 8


def tiny(moe: bool) -> M6Config:
    return M6Config.of_size(
        "tiny", vocab_size=40, n_patches=4, d_patch_feature=8, dropout=0.0, max_positions=16,
        moe={"n_experts": N_EXPERTS, "top_k": 1} if moe else None,
    )


def batch(rank: int, step: int) -> dict[str, torch.Tensor]:
    """A text batch of one rank at one step: prefix, then the next-token targets."""
    g = torch.Generator().manual_seed(100 * step + rank)
    input_ids = torch.randint(5, 40, (4, 12), generator=g)
    lengths, prefix_lengths = torch.tensor([12, 10, 8, 12]), torch.tensor([3, 4, 2, 5])
    positions = torch.arange(12).expand(4, 12)
    labels = input_ids.roll(-1, dims=1)
    labels[(positions < prefix_lengths.unsqueeze(1) - 1) | (positions >= lengths.unsqueeze(1) - 1)] = IGNORE_INDEX
    return {"input_ids": input_ids, "segment_ids": torch.zeros_like(input_ids), "prefix_lengths": prefix_lengths,
            "lengths": lengths, "labels": labels}


@torch.no_grad()
def logits(model: M6Model, rank: int) -> torch.Tensor:
    inputs = {k: v for k, v in batch(rank, step=99).items() if k != "labels"}
    return model.eval()(**inputs) @ model.output_weight.T


def norm(parameters: list[torch.nn.Parameter]) -> float:
    grads = [p.grad.double() for p in parameters if p.grad is not None]
    return float(torch.sqrt(sum((g**2).sum() for g in grads))) if grads else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True, help="directory for results and exports")
    parser.add_argument("--moe", action="store_true", help="8 experts sharded over the ranks")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    from colossalai.booster import Booster

    dist.init_process_group("gloo", init_method=f"file://{args.store}", rank=args.rank, world_size=args.world)
    config, out = tiny(args.moe), Path(args.out)
    plugin_config, optimizer_config = PluginConfig(ep_size=args.world if args.moe else 1), OptimizerConfig(grad_clip=MAX_NORM)
    groups = ep.build_expert_groups(plugin_config.ep_size)
    torch.manual_seed(0)
    model = M6Model(config, expert_parallel=groups.ep if args.moe else None)
    experts = model.expert_parameters()
    if args.moe:
        ep.exclude_from_ddp(model, experts)
    dense = [p for p in model.parameters() if id(p) not in {id(e) for e in experts}]
    plugin = make_plugin(plugin_config, use_gpu=False, precision="fp32", model=config, optimizer=optimizer_config)
    plan = clip_plan(plugin_config, optimizer_config, precision="fp32", moe=args.moe)
    booster = Booster(plugin=plugin)
    model, optimizer, *_ = booster.boost(model, torch.optim.AdamW(model.parameters(), lr=1e-2))
    records = []
    for step in range(3):
        booster.backward(model(**batch(args.rank, step)), optimizer)
        if args.moe:
            ep.sync_expert_gradients(experts, groups)
        record = clip_before_step(plan, dense, experts)
        record.update(clipped_grad_norm=norm(dense), clipped_expert_grad_norm=norm(experts))
        records.append(record)
        optimizer.step()
        optimizer.zero_grad()
    results = {"records": records}
    if args.moe:
        results.update(export_and_reload(model.unwrap(), config, groups, args.rank, out))
    torch.save(results, out / f"rank{args.rank}.pt")
    del model, optimizer, booster, experts, dense
    leave_group()


def export_and_reload(trained: M6Model, config: M6Config, groups: ep.ExpertGroups, rank: int, out: Path) -> dict:
    """Logits of the trained model and of its export loaded at EP=2 (over gloo), at EP=1 (this
    process alone), and of an EP=4 re-export loaded at EP=2."""
    save_expert_sharded(trained, out / "checkpoint", dense=rank == 0, experts=groups.saves_experts)
    dist.barrier()
    if rank == 0:
        export_pretrained(out / "checkpoint" / INDEX, config, {"run": "test"}, out / "model_ep2")
    dist.barrier()
    torch.manual_seed(1)  # a different initialisation: everything must come from the files
    result = {"trained": logits(trained, rank),
              "ep2": logits(load_pretrained(out / "model_ep2", expert_parallel=groups.ep)[0], rank),
              "ep1": logits(load_pretrained(out / "model_ep2")[0], rank)}
    if rank == 0:  # four expert-parallel ranks, each holding 2 experts, write an EP=4 export
        for r in range(4):
            quarter, _ = load_pretrained(out / "model_ep2", expert_parallel=ExpertParallel(None, 4, r))
            save_expert_sharded(quarter, out / "checkpoint_ep4", dense=r == 0, experts=True)
        export_pretrained(out / "checkpoint_ep4" / INDEX, config, {"run": "test"}, out / "model_ep4")
    dist.barrier()
    result["ep4_to_ep2"] = logits(load_pretrained(out / "model_ep4", expert_parallel=groups.ep)[0], rank)
    result["files"] = sorted(p.name for p in (out / "model_ep4").iterdir()) if rank == 0 else None
    return result


if __name__ == "__main__":
    main()
