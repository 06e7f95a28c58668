"""A DVC remote on S3-compatible storage (dvc-s3) against the server on 127.0.0.1: a stage's output
pushed from one clone is pulled into another, which then reports nothing to reproduce. The
endpoint and keys come from the standard AWS environment, never from the repository's config."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cluster


def run(*args: str, cwd) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def dvc(*args: str, cwd) -> str:
    return run(sys.executable, "-m", "dvc", *args, cwd=cwd)


def test_push_from_one_clone_and_pull_into_another(bucket, tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    run("git", "init", "-q", cwd=origin)
    run("git", "config", "user.email", "ci@example.invalid", cwd=origin)
    run("git", "config", "user.name", "ci", cwd=origin)
    dvc("init", "-q", cwd=origin)
    dvc("config", "core.analytics", "false", cwd=origin)
    dvc("remote", "add", "-d", "bucket", f"{bucket}/dvc", cwd=origin)
    (origin / "params.yaml").write_text("rows: 300\n")
    dvc("stage", "add", "-n", "tokens", "-p", "rows", "-o", "tokens.txt",
        f"{sys.executable} -c \"import yaml; n = yaml.safe_load(open('params.yaml'))['rows']; "
        "open('tokens.txt', 'w').write(''.join(f'{i} 中文\\n' for i in range(n)))\"", cwd=origin)
    dvc("repro", "-q", cwd=origin)
    produced = (origin / "tokens.txt").read_text(encoding="utf-8")
    assert produced.count("\n") == 300
    pushed = dvc("push", cwd=origin)
    assert "1 file pushed" in pushed, pushed
    run("git", "add", "-A", cwd=origin)
    run("git", "commit", "-qm", "a stage and its lock", cwd=origin)
    config = (origin / ".dvc/config").read_text()
    assert "endpointurl" not in config and "secret" not in config  # the environment supplies both

    clone = tmp_path / "clone"
    run("git", "clone", "-q", str(origin), str(clone), cwd=tmp_path)
    assert not (clone / "tokens.txt").exists()
    pulled = dvc("pull", cwd=clone)
    assert "1 file added" in pulled or "A\ttokens.txt" in pulled, pulled
    assert (clone / "tokens.txt").read_text(encoding="utf-8") == produced
    assert "up to date" in dvc("status", cwd=clone).lower()
