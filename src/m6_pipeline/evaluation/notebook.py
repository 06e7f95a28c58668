"""Run the analysis notebook headless (the tests do; so can CI or a cron job)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute_notebook(path: str | Path, reports_dir: str | Path, out: str | Path | None = None,
                     timeout: int = 300) -> nbformat.NotebookNode:
    """Execute every cell of `path` against `reports_dir`; a failing cell raises
    nbclient.exceptions.CellExecutionError with the cell and traceback. `out` keeps the
    executed copy (outputs included)."""
    notebook = nbformat.read(path, as_version=4)
    previous = os.environ.get("M6_EVALUATION_DIR")
    os.environ["M6_EVALUATION_DIR"] = str(Path(reports_dir).resolve())
    try:
        NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).resolve().parent.parent)}}).execute()
    finally:
        if previous is None:
            os.environ.pop("M6_EVALUATION_DIR", None)
        else:
            os.environ["M6_EVALUATION_DIR"] = previous
    if out is not None:
        nbformat.write(notebook, out)
    return notebook
