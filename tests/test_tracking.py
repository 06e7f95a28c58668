"""dvclive curves of a training loop (m6_pipeline.tracking): a fresh run starts them over; a run
resumed from the checkpoint of step s keeps the curve up to s and drops what the interrupted run
logged after it, so the resumed curve is the uninterrupted one."""

from __future__ import annotations

import json

from m6_pipeline.tracking import Curves


def history(directory, name="train/loss") -> list[tuple[int, float]]:
    lines = (directory / "plots/metrics" / f"{name}.tsv").read_text().splitlines()
    assert lines[0].split("\t")[0] == "step"
    return [(int(step), float(value)) for step, value in (line.split("\t") for line in lines[1:])]


def log_steps(curves: Curves, steps) -> None:
    for step in steps:
        curves.log(step, {"train/loss": 10.0 - step, "val/loss": 20.0 - step})
    curves.end()


def test_a_resumed_run_continues_the_curve_of_its_checkpoint(tmp_path):
    uninterrupted, interrupted = tmp_path / "uninterrupted", tmp_path / "interrupted"
    log_steps(Curves(uninterrupted), range(1, 9))
    log_steps(Curves(interrupted), range(1, 7))  # crashed after step 6; its last checkpoint: step 4
    log_steps(Curves(interrupted, kept_through=4), range(5, 9))
    assert history(interrupted) == history(uninterrupted) == [(s, 10.0 - s) for s in range(1, 9)]
    assert history(interrupted, "val/loss") == history(uninterrupted, "val/loss")
    assert json.loads((interrupted / "metrics.json").read_text())["train"]["loss"] == 2.0


def test_a_fresh_run_starts_over_and_none_logs_nothing(tmp_path):
    log_steps(Curves(tmp_path / "c"), range(1, 6))
    log_steps(Curves(tmp_path / "c"), range(1, 3))
    assert history(tmp_path / "c") == [(1, 9.0), (2, 8.0)]
    log_steps(Curves(None), range(1, 3))  # no folder: nothing written, nothing raised
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
