"""benchmarks/results/README.md is what the result files say: regenerate it
(`.venv/bin/python benchmarks/results_index.py`) whenever a result file changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_results_index_is_current():
    out = subprocess.run([sys.executable, "benchmarks/results_index.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_every_result_file_has_a_summary_and_a_command():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import results_index

    for path in (ROOT / "benchmarks" / "results").glob("*.json"):
        if path.name.endswith("_run_times.json"):
            continue
        row = results_index.entry(path)
        assert "(no summary" not in row and "(an older layout" not in row, row
