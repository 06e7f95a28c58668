"""The checkpoints of one run in its storage directory: which one a restart resumes from.

A checkpoint directory `step-NNNNNNN` counts only once it carries the COMPLETE marker, which rank
0 writes after every rank's files are uploaded (a run killed mid-save leaves no marker and is
never resumed from). A complete checkpoint whose state file does not parse (a disk filled up, a
hand edit, a copy cut short) is moved aside to `corrupt-step-NNNNNNN[-k]` with a warning, and the
next newest is taken, so a damaged state costs the steps since the previous save, not the run.
The run directory may be local or at a URI (`m6_pipeline.storage`); an object store cannot
rename a directory, so there a damaged checkpoint gets a SET_ASIDE file with the reason instead
and is skipped from then on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from m6_pipeline.storage import Location, location

log = logging.getLogger(__name__)

STATE_FILE = "train_state.json"
COMPLETE = "COMPLETE"
SET_ASIDE = "SET_ASIDE"


def _unusable(checkpoint: Location) -> str | None:
    """Why a complete checkpoint cannot be resumed from, or None."""
    if not (checkpoint / STATE_FILE).is_file():
        return f"no {STATE_FILE}"
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{STATE_FILE} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        return f"{STATE_FILE} holds no step count"
    if not (checkpoint / "model").is_dir():
        return "no model directory"
    return None


def _move_aside(checkpoint: Location, why: str) -> None:
    if not checkpoint.is_local:
        (checkpoint / SET_ASIDE).write_text(f"{why}\n")
        log.warning("checkpoint %s is marked complete but %s: marked %s; resuming from the previous "
                    "complete checkpoint (delete it once inspected)", checkpoint, why, SET_ASIDE)
        return
    path = checkpoint.local_path()
    target = path.with_name(f"corrupt-{path.name}")
    k = 1
    while target.exists():
        target, k = path.with_name(f"corrupt-{path.name}-{k}"), k + 1
    path.rename(target)
    log.warning("checkpoint %s is marked complete but %s: moved aside to %s; resuming from the "
                "previous complete checkpoint (delete it once inspected)", checkpoint, why, target.name)


def newest_usable(run_dir: str | Path | Location) -> Location | None:
    """The newest complete, readable checkpoint of the run; damaged ones are set aside."""
    for checkpoint in reversed(location(run_dir).glob("step-*")):
        if not (checkpoint / COMPLETE).is_file() or (checkpoint / SET_ASIDE).exists():
            continue
        why = _unusable(checkpoint)
        if why is None:
            return checkpoint
        _move_aside(checkpoint, why)
    return None
