"""MoE against dense at equal active parameters and steps, and the gating variants, on the
laptop pretraining setup (§3.4: the paper found top-1 and top-2 similar in perplexity, top-1 a
little slower to converge).

    .venv/bin/python benchmarks/moe_quality.py [--steps 400] [--variants dense moe_top1 ...]

Every variant is conf/local's `pretrain_100b` (4 layers, d=256, 4 heads, 16 experts in every
other block, 2 expert-parallel CPU ranks) trained by the same Ray Train + ColossalAI code on the
same token shards, seed, schedule and steps; only the FFN differs:
- dense: the dense FFN everywhere (conf/local's pretrain_base shape): the same active
  parameters per token as top-1 MoE, whose experts are each as wide as the dense FFN;
- moe_top1 / moe_top2: the paper's softmax gate, top-1 or top-2 (Switch loss weight 0.01);
- moe_top1_centred / moe_top2_centred: conf/local's gate, which scores each token minus the
  batch's mean token (`router_centering`) with a Switch loss weight of 0.1;
- moe_top1_sample / moe_top1_sinkhorn: top-1 with training-time selection by sampling from the
  gate or by Sinkhorn-balanced scores (options beyond the paper; evaluation takes the top-1).
Needs the token shards of `kedro run --env=local --pipeline=pretrain_100b`
(data/05_model_input/pretrain_100b). Writes benchmarks/results/moe_quality.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "moe_quality.json"
WORK = ROOT / "benchmarks" / "work" / "moe_quality"
PAPER_GATE = {"router_centering": False, "aux_loss_weight": 0.01}
CENTRED_GATE = {"router_centering": True, "aux_loss_weight": 0.1}  # conf/local's choice
VARIANTS = {
    "dense": None,
    "moe_top1": {"top_k": 1, **PAPER_GATE},
    "moe_top2": {"top_k": 2, **PAPER_GATE},
    "moe_top1_centred": {"top_k": 1, **CENTRED_GATE},
    "moe_top2_centred": {"top_k": 2, **CENTRED_GATE},
    "moe_top1_sample": {"top_k": 1, "train_selection": "sample", **PAPER_GATE},
    "moe_top1_sinkhorn": {"top_k": 1, "train_selection": "sinkhorn", **PAPER_GATE},
}


def local_parameters():
    """conf/local merged over conf/base as `kedro run --env=local` sees them."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from m6_pipeline.training.parameters import PretrainParameters

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env="local") as session:
        params = session.load_context().params
    return PretrainParameters.model_validate(params["pretrain_100b"]["pretrain"])


def variant_job(params, name: str, moe: dict | None, steps: int):
    from tokenizers import Tokenizer

    manifest = json.loads((ROOT / "data/04_feature/patch_features/_manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(ROOT / "data/04_feature/tokenizer/tokenizer.json"))
    config = params.model.config(
        vocab_size=tokenizer.get_vocab_size(), n_patches=int(manifest["n_patches"]),
        d_patch_feature=int(manifest["d_feature"]),
    )
    if moe is None:
        config = config.model_copy(update={"moe": None})
        params = params.model_copy(update={"plugin": params.plugin.model_copy(update={"ep_size": 1})})
    else:
        config = config.model_copy(update={"moe": config.moe.model_copy(update=moe)})
    job = params.job(config)
    return job.model_copy(update={
        "name": name, "steps": steps, "eval_every": steps // 4,
        "checkpoint_every": steps, "shard_dir": str(ROOT / params.shard_dir),
        "report_dir": str(WORK / name),
        "workers": job.workers.model_copy(update={"storage_path": str(WORK / "ray_train")}),
    }), tokenizer


def main() -> None:
    import ray

    from record import header
    from m6_pipeline.model.m6 import count_parameters
    from m6_pipeline.tokenization.wordpiece import special_ids
    from m6_pipeline.pretraining.tasks import SpecialTokens
    from m6_pipeline.training.launch import run_pretraining
    from m6_pipeline.training.report import moe_summary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    params = local_parameters()
    shutil.rmtree(WORK, ignore_errors=True)
    if not ray.is_initialized():  # the project hook starts Ray with conf/local/ray.yml
        ray.init(num_cpus=2, include_dashboard=False)
    rows = {}
    try:
        for name in args.variants:
            job, tokenizer = variant_job(params, name, VARIANTS[name], args.steps)
            ids = special_ids(tokenizer)
            special = SpecialTokens(pad=ids.pad, sep=ids.sep, mask=ids.mask, bos=ids.bos, eos=ids.eos)
            started = time.perf_counter()
            state, _ = run_pretraining(job, special)
            final = {k: v for k, v in state["validation"][-1].items() if k != "step"}
            rates = [h["tokens_per_s"] for h in state["history"] if "tokens_per_s" in h]
            rows[name] = {
                "val_loss_final": final,
                "val_loss_mean": sum(final.values()) / len(final),
                "validation": state["validation"],
                "n_params": count_parameters(job.model),
                "tokens_per_s_median": sorted(rates)[len(rates) // 2],
                "wall_seconds": time.perf_counter() - started,
            }
            if job.model.moe is not None:
                summary = moe_summary(state)
                rows[name]["drop_rate_after_warmup"] = summary["drop_rate_after_warmup"]
                rows[name]["aux_loss_final_window"] = summary["aux_loss_final_window"]
    finally:
        ray.shutdown()
    out = {**header(), "steps": args.steps,
           "setup": "conf/local pretrain_100b shape, 2 CPU workers, EP=2", "variants": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    tasks = list(next(iter(rows.values()))["val_loss_final"])
    print(f"{'variant':<20} {'params':>11} " + " ".join(f"{t[:12]:>12}" for t in tasks)
          + f" {'mean':>7} {'drop':>6} {'tok/s':>7}")
    for name, r in rows.items():
        drop = f"{r['drop_rate_after_warmup']:.1%}" if "drop_rate_after_warmup" in r else "-"
        print(f"{name:<20} {r['n_params']:>11,} " + " ".join(f"{r['val_loss_final'][t]:>12.3f}" for t in tasks)
              + f" {r['val_loss_mean']:>7.3f} {drop:>6} {r['tokens_per_s_median']:>7,.0f}")


if __name__ == "__main__":
    main()
