"""benchmarks/results/README.md, generated from the result files themselves: for each, what it
measures, its headline figures, the machine (CPU model, bf16/AMX flags, torch's CPU capability),
the date and the commit measured. A file written before results recorded their machine says
so, and which command re-measures it; nothing is copied by hand. The project README's
headline block (between its `results:start` and `results:end` markers) is written from the
same files.

    .venv/bin/python benchmarks/results_index.py [--check]

`--check` exits non-zero when either is not what the files say (CI-friendly)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INDEX = RESULTS / "README.md"
PROJECT_README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _range(values: list[float], digits: int = 2) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if abs(high - low) < 10 ** -digits else f"{low:.{digits}f}–{high:.{digits}f}"


def _pretrain_throughput(d: dict) -> str:
    parts = []
    for row in d["rows"]:
        body = f", blocks alone {row['body_ratio_ours_over_hf']:.2f}×" if "body_ratio_ours_over_hf" in row else ""
        parts.append(f"{row['setting']} {row['ratio_ours_over_hf']:.2f}×{body}")
    return "M6 training step over GPT-2 (tokens/s): " + "; ".join(parts)


def _moe_layer(d: dict) -> str:
    rows = d["rows"]
    peer = "ours_over_mixtral"
    by_precision: dict[str, list[float]] = {}
    for row in rows:
        by_precision.setdefault(row.get("precision", "fp32"), []).append(row[peer])
    return "MoE layer over Mixtral's block at equal FLOPs: " + "; ".join(
        f"{p} {_range(v)}×" for p, v in by_precision.items())


def _corpus_cleaning(d: dict) -> str:
    ratios = d.get("ratios_vs_data_juicer_rule_recipe", {})
    return "cleaning over Data-Juicer: " + ", ".join(f"{k} {v:.1f}×" for k, v in ratios.items() if isinstance(v, float))


def _corpus_memory(d: dict) -> str:
    scales = sorted((k for k in d if k.startswith("x") and k[1:].isdigit()), key=lambda k: int(k[1:]))
    lo, hi = d[scales[0]], d[scales[-1]]
    return (f"text cleaning, peak PSS {lo['peak_pss_mb']:,.0f} MiB at {lo['docs']:,} documents, "
            f"{hi['peak_pss_mb']:,.0f} MiB at {hi['docs']:,} distinct ones (×{d['peak_ratio']:.2f} for "
            f"×{d['input_ratio']:.0f} input; the driver's dedup state {hi['at_peak_by_process_mb']['driver']:,.0f} MiB)")


def _annotation_load(d: dict) -> str:
    lat = d["submit_latency_s"]
    return (f"{d['annotators']} annotators for {d['scoring_seconds']:.0f} s: submit p50 {lat['p50']:.2f} s, "
            f"p95 {lat['p95']:.2f} s; {d['lost']} lost, {d['duplicated']} duplicated")


def _default_run(d: dict) -> str:
    held = sum(f["holds"] for f in d["figures"])
    run = d["run"]
    return (f"`make run`: {run['kedro_run_seconds'] / 60:.1f} min of kedro run, {run['total_seconds'] / 60:.1f} with "
            f"set-up (budget {run['budget_seconds'] / 60:.0f}); {held} of {len(d['figures'])} quality figures held")


def _attention_kernels(d: dict) -> str:
    return "SDPA flash over math kernel time (forward + backward, prefix-LM mask): " + ", ".join(
        f"{dtype} {row['flash_over_math']:.2f}" for dtype, row in d["rows"].items())


def _t2i_generation(d: dict) -> str:
    return f"text-to-image generation: KV cache {d['kv_cache_speedup']:.1f}× faster than recomputing"


def _moe_quality(d: dict) -> str:
    return f"{d['steps']} steps: mean validation loss " + ", ".join(
        f"{name} {v['val_loss_mean']:.3f}" for name, v in d["variants"].items())


def _page_extraction(d: dict) -> str:
    return "webpage image extraction: " + ", ".join(
        f"{r['images']:,} images {r['warm_us_per_image']:.0f} µs each" for r in d["rows"])


def _pretrain_avx2(d: dict) -> str:
    return "pretraining under AVX2-capped kernels: " + ", ".join(
        f"{s['stage']} {s['wall_seconds']:.0f} s ({s['precision']['precision']})" for s in d["stages"])


def _t2i_top_k(d: dict) -> str:
    return "text-to-image colour accuracy by top-k: " + ", ".join(
        f"k={r['top_k']} {r['attribute_accuracy']['colour']:.1%}" for r in d["rows"])


SUMMARIES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "pretrain_throughput": ("benchmarks/pretrain_throughput.py", _pretrain_throughput),
    "moe_layer": ("benchmarks/moe_layer.py", _moe_layer),
    "corpus_cleaning": ("benchmarks/corpus_cleaning.py", _corpus_cleaning),
    "corpus_memory": ("benchmarks/corpus_memory.py", _corpus_memory),
    "annotation_load": ("benchmarks/annotation_load.py", _annotation_load),
    "default_run": ("benchmarks/default_run.py", _default_run),
    "attention_kernels": ("benchmarks/attention_kernels.py", _attention_kernels),
    "t2i_generation": ("benchmarks/t2i_generation.py", _t2i_generation),
    "moe_quality": ("benchmarks/moe_quality.py", _moe_quality),
    "page_extraction": ("benchmarks/page_extraction.py", _page_extraction),
    "pretrain_avx2_emulated": ("make run CPU_ISA=avx2 (the pretraining stages)", _pretrain_avx2),
    "t2i_top_k": ("benchmarks/t2i_top_k.py", _t2i_top_k),
}


def _machine(d: dict) -> str:
    m = d.get("machine")
    if not isinstance(m, dict) or not m.get("cpu_model"):
        return "**not recorded**"
    flags = [f for f in m.get("cpu_flags", []) if f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2")]
    caps = m.get("isa_caps") or {}
    capped = f", capped {caps}" if caps else ""
    return f"{m['cpu_model']}, {m.get('cores', '?')} cores, {' '.join(flags) or 'no AVX2'}, torch {m.get('torch')} ({m.get('torch_cpu_capability')}){capped}"


def _kind(name: str) -> str:
    return next((k for k in SUMMARIES if name == k or name.startswith(k + "_")), name)


def _headline(path: Path, d: dict) -> str:
    summarise = SUMMARIES.get(_kind(path.stem), (None, None))[1]
    try:
        return summarise(d) if summarise else "(no summary: see the file)"
    except (KeyError, TypeError, ValueError) as error:  # an older layout of the file
        return f"(an older layout; re-run to summarise: {type(error).__name__} {error})"


def _short_machine(d: dict) -> str:
    m = d.get("machine")
    if not isinstance(m, dict) or not m.get("cpu_model"):
        return "machine not recorded"
    kind = "AMX" if "amx_bf16" in m.get("cpu_flags", []) else "AVX-512-BF16" if "avx512_bf16" in m.get(
        "cpu_flags", []) else "AVX2"
    capped = ", kernels capped to AVX2" if (m.get("isa_caps") or {}) else ""
    return f"{m['cpu_model']} ({kind}{capped}), {m.get('cores', '?')} cores"


def headlines() -> str:
    """The README's block: one line per result file."""
    lines = []
    for path in _files():
        d = json.loads(path.read_text())
        when = (d.get("measured_at") or (d.get("run", {}) or {}).get("started") or "date not recorded")[:10]
        lines.append(f"- **{path.stem}**: {_headline(path, d)} — {_short_machine(d)}, {when}")
    return "\n".join(lines)


def _files() -> list[Path]:
    return sorted(p for p in RESULTS.glob("*.json") if not p.name.endswith("_run_times.json"))


def readme_with_headlines(text: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{PROJECT_README} lacks the {START} / {END} markers of the headline block")
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return f"{before}{START}\n{headlines()}\n{END}{after}"


def entry(path: Path) -> str:
    d = json.loads(path.read_text())
    kind = _kind(path.stem)
    script = SUMMARIES.get(kind, (None, None))[0]
    headline = _headline(path, d)
    when = d.get("measured_at") or (d.get("run", {}) or {}).get("started") or "**not recorded**"
    rerun = "–" if not script else f"`.venv/bin/python {script}`" if script.endswith(".py") else f"`{script}`"
    return f"| `{path.name}` | {headline} | {_machine(d)} | {when} | {d.get('commit') or '–'} | {rerun} |"


def render() -> str:
    files = _files()
    lines = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/results_index.py` from the JSON files beside it; do not edit by hand.",
        "Ratios are ours over the named peer, measured side by side in one run on the machine named.",
        "A file whose machine is **not recorded** predates that record: re-run its command before quoting it.",
        "",
        "| file | headline | machine | measured | commit | re-measure |",
        "|---|---|---|---|---|---|",
        *(entry(p) for p in files),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    wanted = {INDEX: render(), PROJECT_README: readme_with_headlines(PROJECT_README.read_text())}
    if args.check:
        stale = [str(path) for path, text in wanted.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"{path} is out of date: run .venv/bin/python benchmarks/results_index.py", file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
