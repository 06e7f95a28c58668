#!/usr/bin/env python3
"""Data-Juicer 1.6.1 peer for the cleaning-speed benchmark.

Called by benchmarks/corpus_cleaning.py (which builds the input JSONL); by hand, run it
with the Data-Juicer venv's python (NOT the project venv):

  benchmarks/.venv-dj/bin/python benchmarks/data_juicer_peer.py \
      --input benchmarks/work/corpus_cleaning/peer_x4.jsonl \
      --workdir benchmarks/work/dj --np 2

It copies the committed recipe (benchmarks/data_juicer_rule_recipe.yaml, or
--recipe) into WORKDIR/recipe.yaml with dataset_path / export_path / np /
work_dir rewritten, then runs it the way `dj-process --config` does in 1.6.1
(data_juicer/tools/process_data.py): init_configs(['--config', ...]) ->
DefaultExecutor(cfg).run().

Timings:
  seconds_process  DefaultExecutor.run(): dataset load, all ops, export done.
  seconds_wall     from this python process's start (psutil create_time, so
                   interpreter start-up and all imports count) to the end.

Exactly one JSON line goes to stdout; everything else (DJ's loguru output,
tqdm bars, worker prints) goes to stderr, and DJ's own log files go under
WORKDIR/dj_work/<job_id>/logs/.

Offline: HF_HUB_OFFLINE, HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE are set to
1 before Data-Juicer is imported; the HF datasets cache and the DJ cache are
pointed at fresh dirs under WORKDIR. The recipe's ops need no models or nltk
data.

No installs at run time: Data-Juicer's LazyLoader `uv pip install`s any
missing module it touches (uv ignores pip.conf, so e.g. a multi-GB CUDA torch).
In 1.6.1 the default executor needs, beyond the base deps: ray (imported by
data_juicer.core), torch (free_models() calls torch.cuda.empty_cache() after
every op) and ftfy (fix_unicode_mapper). This script checks they import,
and disables LazyLoader's installer so a missing one fails loudly instead.
"""

import time

_T_SCRIPT = time.time()

import argparse  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_RECIPE = HERE / "data_juicer_rule_recipe.yaml"
PEER = "data-juicer 1.6.1"
# Must already be installed in the DJ venv (see docstring).
REQUIRED_MODULES = ("ray", "torch", "ftfy", "selectolax", "regex")

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def log(msg: str) -> None:
    # DJ swaps sys.stdout/sys.stderr for loguru streams; write to fd 2 directly.
    os.write(2, (msg.rstrip("\n") + "\n").encode())


def disable_lazy_auto_install() -> None:
    from data_juicer.utils.lazy_loader import LazyLoader

    def _refuse(cls, package_spec, pip_args=None):
        raise ImportError(
            f"data_juicer_peer: Data-Juicer tried to auto-install {package_spec!r}; "
            f"install it in the DJ venv with pip first")

    LazyLoader._install_package = classmethod(_refuse)


def process_start_time() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # pragma: no cover - psutil is a DJ dependency
        return _T_SCRIPT


def count_lines(path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def count_jsonl_docs(path) -> int:
    """Non-blank lines (handles a missing trailing newline)."""
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                n += 1
    return n


def exported_files(export_path: str):
    if os.path.isfile(export_path):
        return [export_path]
    # Sharded export (export_shard_size > 0): STEM-NNNNN...EXT; never count the
    # STEM_stats.jsonl file DJ writes beside the data.
    stem, ext = os.path.splitext(export_path)
    return sorted(f for f in glob.glob(f"{stem}-*{ext}") if "_stats" not in os.path.basename(f))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Data-Juicer 1.6.1 benchmark peer")
    ap.add_argument("--input", required=True, help="input JSONL ({'text': ...} per line)")
    ap.add_argument("--workdir", required=True, help="scratch dir (recipe copy, DJ work dir, output)")
    ap.add_argument("--np", type=int, default=2, help="Data-Juicer worker processes (default 2)")
    ap.add_argument("--recipe", default=str(DEFAULT_RECIPE), help="recipe yaml (default: committed one)")
    args = ap.parse_args(argv)

    # Keep one handle on the real stdout for the result line; send fd 1 to
    # stderr so DJ (which redirects sys.stdout into loguru), tqdm and forked
    # workers can't write to it.
    result_fd = os.dup(1)
    sys.stdout.flush()
    os.dup2(2, 1)

    input_path = os.path.abspath(args.input)
    if not os.path.isfile(input_path):
        ap.error(f"no such input: {input_path}")
    if args.np < 1:
        ap.error("--np must be >= 1")
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    missing = []
    for mod in REQUIRED_MODULES:
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        log(f"missing {missing}: pip install them in this venv first "
            f"(else Data-Juicer would auto-install them mid-run)")
        return 2

    # Fresh caches per run, so no run reuses another's arrow files.
    hf_cache = workdir / "hf_cache"
    dj_cache = workdir / "dj_cache"
    dj_work = workdir / "dj_work"
    out_dir = workdir / "out"
    for d in (hf_cache, dj_cache, dj_work, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    os.environ.update(OFFLINE_ENV)
    os.environ["HF_HOME"] = str(hf_cache)
    os.environ["HF_DATASETS_CACHE"] = str(hf_cache / "datasets")
    os.environ["DATA_JUICER_CACHE_HOME"] = str(dj_cache)

    import yaml

    with open(args.recipe, encoding="utf-8") as fh:
        recipe = yaml.safe_load(fh)
    export_path = str(out_dir / "cleaned.jsonl")
    recipe["dataset_path"] = input_path
    recipe["export_path"] = export_path
    recipe["work_dir"] = str(dj_work)
    recipe["np"] = args.np
    recipe_path = workdir / "recipe.yaml"
    with open(recipe_path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(recipe, fh, allow_unicode=True, sort_keys=False)

    docs_in = count_lines(input_path)

    disable_lazy_auto_install()
    from data_juicer.config import init_configs
    from data_juicer.core import DefaultExecutor

    cfg = init_configs(args=["--config", str(recipe_path)])
    executor = DefaultExecutor(cfg)
    t0 = time.perf_counter()
    executor.run(skip_return=True)
    seconds_process = time.perf_counter() - t0

    files = exported_files(cfg.export_path)
    if not files:
        log(f"no export found at {cfg.export_path}")
        return 1
    docs_kept = sum(count_jsonl_docs(f) for f in files)
    seconds_wall = time.time() - process_start_time()

    result = {
        "peer": PEER,
        "docs_in": docs_in,
        "docs_kept": docs_kept,
        "seconds_process": round(seconds_process, 3),
        "seconds_wall": round(seconds_wall, 3),
        "np": args.np,
        "docs_per_s_per_core": round(docs_in / seconds_process / args.np, 1),
    }
    log(f"[data_juicer_peer] recipe={recipe_path} export={files} "
        f"logs={cfg.event_log_dir}")
    os.write(result_fd, (json.dumps(result) + "\n").encode())
    os.close(result_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
