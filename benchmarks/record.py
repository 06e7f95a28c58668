"""What every benchmark result file starts with, so that a figure is never read as another
machine's or another day's: the machine (CPU model, the matmul flags, cores, torch and its CPU
capability, any instruction-set caps), when it was measured, and the commit measured."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

from m6_pipeline.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+changes" if dirty else "")


def header(**extra) -> dict:
    """{"machine", "measured_at" (UTC, ISO 8601), "commit"} and any `extra` machine facts (threads)."""
    return {
        "machine": {**describe_machine(), **extra},
        "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
    }
