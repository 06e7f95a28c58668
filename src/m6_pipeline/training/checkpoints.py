"""The checkpoints of one run in its storage directory: which one a restart resumes from.

A checkpoint directory `step-NNNNNNN` counts only once it carries the COMPLETE marker, which rank
0 writes after every rank's files are uploaded (a run killed mid-save leaves no marker and is
never resumed from). A complete checkpoint whose state file does not parse (a disk filled up, a
hand edit, a copy cut short) is moved aside to `corrupt-step-NNNNNNN[-k]` with a warning, and the
next newest is taken, so a damaged state costs the steps since the previous save, not the run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
COMPLETE = "COMPLETE"


def _unusable(checkpoint: Path) -> str | None:
    """Why a complete checkpoint cannot be resumed from, or None."""
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text())
    except FileNotFoundError:
        return f"no {STATE_FILE}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{STATE_FILE} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return f"{STATE_FILE} holds no step count"
    if not (checkpoint / "model").is_dir():
        return "no model directory"
    return None


def _move_aside(checkpoint: Path, why: str) -> None:
    target = checkpoint.with_name(f"corrupt-{checkpoint.name}")
    k = 1
    while target.exists():
        target, k = checkpoint.with_name(f"corrupt-{checkpoint.name}-{k}"), k + 1
    checkpoint.rename(target)
    log.warning("checkpoint %s is marked complete but %s: moved aside to %s; resuming from the "
                "previous complete checkpoint (delete it once inspected)", checkpoint, why, target.name)


def newest_usable(run_dir: str | Path) -> Path | None:
    """The newest complete, readable checkpoint of the run; damaged ones are moved aside."""
    for checkpoint in sorted(Path(run_dir).glob("step-*"), reverse=True):
        if not (checkpoint / COMPLETE).exists():
            continue
        why = _unusable(checkpoint)
        if why is None:
            return checkpoint
        _move_aside(checkpoint, why)
    return None
