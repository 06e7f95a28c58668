"""Resume safety: which checkpoint a restart takes, and which runs share checkpoints at all."""

from __future__ import annotations

import json
import logging

from m6_pipeline.model import M6Config
from m6_pipeline.training.checkpoints import COMPLETE, STATE_FILE, newest_usable
from m6_pipeline.training.config import PluginConfig, PretrainJob, WorkersConfig
from m6_pipeline.training.launch import run_fingerprint
from tests.pretraining.synthetic_shards import write_synthetic_shards


def checkpoint(run_dir, step: int, *, complete=True, state: str | None = None, model=True):
    path = run_dir / f"step-{step:07d}"
    path.mkdir(parents=True)
    if model:
        (path / "model").mkdir()
    (path / STATE_FILE).write_text(json.dumps({"step": step}) if state is None else state)
    if complete:
        (path / COMPLETE).write_text("all ranks uploaded\n")
    return path


def test_the_newest_complete_checkpoint_is_taken_and_a_half_written_one_never(tmp_path):
    checkpoint(tmp_path, 8)
    checkpoint(tmp_path, 16)
    checkpoint(tmp_path, 24, complete=False)  # killed mid-save: no marker
    assert newest_usable(tmp_path).name == "step-0000016"
    assert (tmp_path / "step-0000024").is_dir()  # left alone: Ray may still be uploading it


def test_a_damaged_complete_checkpoint_is_moved_aside_with_a_warning(tmp_path, caplog):
    checkpoint(tmp_path, 8)
    checkpoint(tmp_path, 16, state='{"step": 16, "hist')  # cut short
    checkpoint(tmp_path, 24, state='["no", "step"]')
    checkpoint(tmp_path, 32, model=False)
    with caplog.at_level(logging.WARNING):
        assert newest_usable(tmp_path).name == "step-0000008"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "corrupt-step-0000016", "corrupt-step-0000024", "corrupt-step-0000032", "step-0000008"]
    assert "JSONDecodeError" in caplog.text and "no model directory" in caplog.text
    checkpoint(tmp_path, 16, state="")  # damaged again: a second copy aside, the first kept
    assert newest_usable(tmp_path).name == "step-0000008"
    assert (tmp_path / "corrupt-step-0000016-1").is_dir()


def test_no_usable_checkpoint_means_a_fresh_start(tmp_path):
    checkpoint(tmp_path, 8, state="not json")
    assert newest_usable(tmp_path) is None and newest_usable(tmp_path / "absent") is None


def test_the_run_name_changes_with_the_device_kind_and_the_plugin(tmp_path):
    write_synthetic_shards(tmp_path / "shards", n_text=40, n_pairs=20)

    def job(**changes) -> PretrainJob:
        base = dict(name="run", model=M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8),
                    steps=4, batch_size=2, shard_dir=str(tmp_path / "shards"), report_dir=str(tmp_path / "r"),
                    workers=WorkersConfig(num_workers=2, storage_path=str(tmp_path / "s")))
        return PretrainJob(**{**base, **changes})

    cpu = run_fingerprint(job())
    assert run_fingerprint(job(report_dir=str(tmp_path / "elsewhere"))) == cpu  # paths do not count
    assert run_fingerprint(job(workers=WorkersConfig(num_workers=2, use_gpu=True,
                                                     storage_path=str(tmp_path / "s")))) != cpu
    assert run_fingerprint(job(plugin=PluginConfig(name="low_level_zero", zero_stage=1))) != cpu
