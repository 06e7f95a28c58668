"""The default run's record: where `make run` spent its time on this machine, and whether it held
the quality figures it promises (issue: `make run` within 30 minutes on both kinds of CPU).

    .venv/bin/python benchmarks/default_run.py [--setup-seconds S] [--label NAME]

Reads what the last `kedro run --env=local` left (data/08_reporting/run_times.json and each
stage's report) and writes benchmarks/results/default_run_<label>.{json,md}; the label defaults
to the precision class of the machine (`bf16`: bf16 runs natively and fast, `fp32`: it does
not), so both kinds keep a record side by side. Exits non-zero when a figure is missed or the run
took longer than its budget, so a reader can trust a green record.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "data" / "08_reporting"
RESULTS = ROOT / "benchmarks" / "results"
BUDGET_SECONDS = 30 * 60
PRETRAINING = ("pretrain_base", "pretrain_100b")


def _load(path: str) -> dict:
    file = REPORTS / path
    if not file.exists():
        raise SystemExit(f"{file} is missing: run `make run` (kedro run --env=local) first")
    return json.loads(file.read_text())


def _figure(name: str, value: float, threshold: float, holds: bool, unit: str = "") -> dict:
    return {"figure": name, "value": value, "threshold": threshold, "holds": bool(holds), "unit": unit}


def quality_figures() -> list[dict]:
    """The figures the default run must hold, each with its threshold."""
    figures = []
    t2i = _load("t2i/metrics.json")
    colour = t2i["attribute_accuracy"]["colour"]  # the headline: the paper's top-k sampling
    figures.append(_figure("text-to-image colour accuracy (paper_top_k)", colour, 0.60, colour >= 0.60))
    itm = _load("finetune_itm/metrics.json")["accuracy"]["pretrained"]["accuracy"]
    figures.append(_figure("ITM accuracy (pretrained)", itm, 0.80, itm >= 0.80))
    vqa = _load("finetune_vqa/metrics.json")["accuracy"]
    pre, base = vqa["pretrained"]["overall"]["accuracy"], vqa["baseline"]["overall"]["accuracy"]
    figures.append(_figure("VQA accuracy, pretrained minus baseline", pre - base, 0.0, pre > base))
    caption = _load("finetune_caption/metrics.json")["scores"]
    pre, base = caption["pretrained"]["cider_d"], caption["baseline"]["cider_d"]
    figures.append(_figure("caption CIDEr-D, pretrained minus baseline", pre - base, 0.0, pre > base))
    means = {}
    for stage in PRETRAINING:
        summary = _load(f"{stage}/train_summary.json")
        for task, row in summary["tasks"].items():
            figures.append(_figure(f"{stage} {task}: validation loss fall", row["fall"], 0.40, row["fall"] >= 0.40))
        means[stage] = sum(r["val_loss_final"] for r in summary["tasks"].values()) / len(summary["tasks"])
        if "moe" in summary:
            drop = summary["moe"]["drop_rate_after_warmup"]
            figures.append(_figure(f"{stage} drop rate after warm-up (c = 1.25)", drop, 0.05, drop < 0.05))
    gap = means["pretrain_100b"] - means["pretrain_base"]
    figures.append(_figure("MoE minus dense mean validation loss (equal active parameters, steps)", gap, 0.0,
                           gap < 0.0, "nats"))
    return figures


def variant_colour() -> dict[str, float]:
    """Colour accuracy of every text-to-image sampling variant (the headline is paper_top_k)."""
    t2i = _load("t2i/metrics.json")
    return {name: v["attribute_accuracy"]["colour"] for name, v in t2i["variants"].items()}


def record(setup_seconds: float) -> dict:
    times = _load("run_times.json")
    if times["status"] != "succeeded":
        raise SystemExit(f"the last run {times['status']}: {times.get('error')}")
    precisions = {stage: choice["precision"] for stage, choice in times.get("precision", {}).items()}
    total = times["wall_seconds"] + setup_seconds
    return {
        "machine": times["machine"],
        "run": {"started": times["started"], "pipelines": times["pipelines"],
                "kedro_run_seconds": times["wall_seconds"], "setup_seconds": setup_seconds,
                "total_seconds": total, "budget_seconds": BUDGET_SECONDS, "within_budget": total <= BUDGET_SECONDS},
        "stages": [{"stage": s["stage"], "wall_seconds": s["wall_seconds"], "peak_rss_mib": s["peak_rss_mib"],
                    "precision": precisions.get(s["stage"])} for s in times["stages"]],
        "slowest_nodes": sorted(({"node": n["node"], "wall_seconds": n["wall_seconds"]} for n in times["nodes"]),
                                key=lambda n: -n["wall_seconds"])[:10],
        "figures": quality_figures(),
        "t2i_colour_by_variant": variant_colour(),
        "reference_ceilings": {"t2i_real_images": _load("t2i/metrics.json")["real_images"],
                               "t2i_vqgan_reconstructions": _load("t2i/metrics.json")["vqgan_reconstructions"]},
    }


def markdown(result: dict, label: str) -> str:
    m, run = result["machine"], result["run"]
    caps = ", ".join(f"{k}={v}" for k, v in m.get("isa_caps", {}).items()) or "none"
    lines = [
        f"# The default run on a `{label}` machine",
        "",
        f"Generated by `benchmarks/default_run.py` from the run of {run['started']}.",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, flags {', '.join(m['cpu_flags'])}, torch "
        f"{m['torch']} ({m['torch_cpu_capability']}), instruction-set caps: {caps}.",
        "",
        f"`kedro run --env=local`: **{run['kedro_run_seconds'] / 60:.1f} min**; with set-up "
        f"{run['total_seconds'] / 60:.1f} min (budget {run['budget_seconds'] / 60:.0f}).",
        "",
        "| stage | wall s | peak RSS MiB | precision |",
        "|---|---:|---:|---|",
        *(f"| {s['stage']} | {s['wall_seconds']:.0f} | {s['peak_rss_mib']:.0f} | {s['precision'] or '–'} |"
          for s in result["stages"]),
        "",
        "| figure | value | threshold | holds |",
        "|---|---:|---:|---|",
        *(f"| {f['figure']} | {f['value']:.4g} | {f['threshold']:g} | {'yes' if f['holds'] else '**no**'} |"
          for f in result["figures"]),
        "",
        "Text-to-image colour accuracy by sampling variant: "
        + ", ".join(f"{k} {v:.1%}" for k, v in result["t2i_colour_by_variant"].items())
        + "; the judge on real held-out images "
        + f"{result['reference_ceilings']['t2i_real_images']['colour']:.1%}, on VQGAN reconstructions "
        + f"{result['reference_ceilings']['t2i_vqgan_reconstructions']['colour']:.1%} (the first stage's ceiling).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup-seconds", type=float, default=0.0, help="make setup's time, if it ran")
    parser.add_argument("--label", default=None, help="defaults to the precision the pretraining chose")
    args = parser.parse_args()
    result = record(args.setup_seconds)
    label = args.label or next((s["precision"] for s in result["stages"] if s["stage"] in PRETRAINING
                                and s["precision"]), "unknown")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"default_run_{label}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"default_run_{label}.md").write_text(markdown(result, label))
    print(markdown(result, label))
    missed = [f["figure"] for f in result["figures"] if not f["holds"]]
    if missed or not result["run"]["within_budget"]:
        print(f"missed: {missed}; within budget: {result['run']['within_budget']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
