"""The DVC workflow of the README on the corpus stage, in a copy of this working tree: `dvc repro`
runs the Kedro stage, `dvc push` sends its outputs to the default remote (a local folder beside
the clone, no credentials), a second clone `dvc pull`s them and has nothing to reproduce;
`dvc exp run -S` on a conf/local parameter changes a corpus metric, `dvc params diff` and
`dvc exp show` say so, and `dvc plots show` renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.dvc  # two corpus runs through DVC and Kedro: about two minutes

# the corpus stage at its smallest: a few hundred products, no perplexity LM or near-duplicate pass
SMALL_CORPUS = """corpus:
  num_workers: 2
  catalogue: {n_items: 120}
  perplexity: {enabled: false}
  near_duplicates: {enabled: false}
"""


def environment() -> dict:
    # `kedro` and `dvc` from this interpreter's environment, as `make repro` puts them on PATH
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env=environment())
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def dvc(*args: str, cwd: Path) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def copy_of_this_tree(target: Path) -> None:
    """The tracked and the new, unignored files of this working tree, committed in a new repository."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / "conf/local/parameters_corpus.yml").write_text(SMALL_CORPUS)
    (target / "dvc.lock").unlink(missing_ok=True)  # the default run's lock: this copy runs its own
    for args in (["init", "-q"], ["config", "user.email", "ci@example.invalid"], ["config", "user.name", "ci"],
                 ["add", "-A"], ["commit", "-qm", "a copy of the working tree"]):
        run("git", *args, cwd=target)


def corpus_numbers(project: Path) -> dict:
    return json.loads((project / "data/08_reporting/corpus_report.json").read_text())


def test_repro_push_pull_experiment_and_plots(tmp_path):
    origin = tmp_path / "origin"
    copy_of_this_tree(origin)
    dvc("repro", "corpus", cwd=origin)
    lock = (origin / "dvc.lock").read_text()
    assert "corpus:" in lock and "embedded_sources:" in lock
    pushed = dvc("push", "--with-deps", "corpus", cwd=origin)
    assert "pushed" in pushed, pushed
    assert (tmp_path / "m6-pipeline-dvc-store").is_dir()  # the default remote: beside the clone
    run("git", "add", "dvc.lock", cwd=origin)
    run("git", "commit", "-qm", "the corpus stage's lock", cwd=origin)

    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / "data/03_primary/text").exists()
    dvc("pull", "--with-deps", "corpus", cwd=clone)
    assert corpus_numbers(clone) == corpus_numbers(origin)
    assert "up to date" in dvc("status", "--with-deps", "corpus", cwd=clone).lower()

    before = corpus_numbers(origin)
    dvc("exp", "run", "-S", "conf/local/parameters_corpus.yml:+corpus.text_rules.min_text_chars=80", "corpus",
        cwd=origin)
    after = corpus_numbers(origin)
    assert json.dumps(after) != json.dumps(before)  # stricter lengths keep fewer documents
    assert "corpus.text_rules.min_text_chars" in dvc("params", "diff", cwd=origin)
    shown = dvc("exp", "show", "--json", cwd=origin)
    assert "min_text_chars" in shown

    rendered = tmp_path / "plots"
    dvc("plots", "show", "-o", str(rendered), cwd=origin)
    assert (rendered / "index.html").stat().st_size > 1000
