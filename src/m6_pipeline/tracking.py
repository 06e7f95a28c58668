"""Training curves for DVC. Every training loop (dense and MoE pretraining, the VQGAN,
text-to-image, VQA / captioning / ITM finetuning) logs its metrics with dvclive into a folder
of its own (`plots/metrics/<name>.tsv`, one row a logged step, and `metrics.json`, the last
values), which dvc.yaml declares as plots: `dvc plots show` draws them all, `dvc metrics show`
and `dvc exp show` list the last values.

A loop that resumes from a checkpoint at step s keeps the curve up to s and drops what the
interrupted run logged after it, so that the resumed curve is the uninterrupted one; a loop that
starts at step 0 starts its curves over."""

from __future__ import annotations

import csv
from pathlib import Path

from dvclive import Live


def _drop_after(directory: Path, step: int) -> None:
    """Remove the rows past `step` from every metric history under `directory`."""
    for tsv in (directory / "plots" / "metrics").rglob("*.tsv"):
        with tsv.open(newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        if not rows or "step" not in rows[0]:
            continue
        at = rows[0].index("step")
        kept = [rows[0], *(row for row in rows[1:] if int(row[at]) <= step)]
        with tsv.open("w", newline="") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(kept)


class Curves:
    """The dvclive curves of one training run in `directory` (None: nothing is logged)."""

    def __init__(self, directory: str | Path | None, kept_through: int | None = None):
        """kept_through: the last step of the checkpoint a run resumes from (its curves up to
        there are kept, later rows dropped); None: a fresh run, whose curves start over."""
        self.live = None
        if directory is None:
            return
        directory = Path(directory)
        if kept_through is not None:
            _drop_after(directory, kept_through)
        # no DVC experiment and no dvc.yaml of dvclive's own: the project's dvc.yaml declares these
        self.live = Live(dir=str(directory), resume=kept_through is not None, save_dvc_exp=False, dvcyaml=None)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        """One row at `step` in each metric's history."""
        if self.live is None:
            return
        self.live.step = step
        for name, value in metrics.items():
            self.live.log_metric(name, float(value))

    def end(self) -> None:
        """Write the summary (metrics.json: the last value of each metric)."""
        if self.live is not None:
            self.live.end()
