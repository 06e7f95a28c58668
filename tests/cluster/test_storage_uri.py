"""Storage by URI against an S3 server on 127.0.0.1: locations, token shards streamed from the
bucket, checkpoints found and set aside there, a model exported to it and loaded in a fresh process."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.pretrained import export_pretrained, fetch_weights, load_pretrained, local_model_dir
from m6_pipeline.pretraining.stream import ShardStream
from m6_pipeline.storage import location
from m6_pipeline.training.checkpoints import COMPLETE, SET_ASIDE, STATE_FILE, newest_usable
from m6_pipeline.training.config import PretrainJob, WorkersConfig
from m6_pipeline.training.launch import run_fingerprint
from tests.conftest import ROOT
from tests.pretraining.synthetic_shards import write_synthetic_shards

pytestmark = pytest.mark.cluster


def test_a_location_reads_writes_lists_and_copies_trees(bucket, tmp_path):
    root = location(f"{bucket}/runs")
    (root / "a" / "state.json").write_text('{"step": 3}')
    assert json.loads((root / "a/state.json").read_text()) == {"step": 3}
    assert (root / "a").is_dir() and (root / "a/state.json").is_file() and not (root / "b").exists()
    (tmp_path / "tree/sub").mkdir(parents=True)
    (tmp_path / "tree/sub/w.bin").write_bytes(b"\x00\x01" * 100)
    (tmp_path / "tree/card.json").write_text("{}")
    (root / "tree").upload_from(tmp_path / "tree")
    assert [c.uri for c in root.glob("*/*.json")] == [f"{bucket}/runs/a/state.json", f"{bucket}/runs/tree/card.json"]
    assert (root / "tree/sub/w.bin").size() == 200
    back = (root / "tree").download_to(tmp_path / "back")
    assert (back / "sub/w.bin").read_bytes() == b"\x00\x01" * 100
    # pickled as its URI: a Ray worker rebuilds the filesystem from its own environment
    assert pickle.loads(pickle.dumps(root / "tree")).glob("*") == (root / "tree").glob("*")
    (root / "tree").delete()
    assert not (root / "tree").exists() and (root / "a").exists()


def test_a_uri_without_a_bucket_is_refused():
    with pytest.raises(ValueError, match="names no bucket"):
        location("s3://")


def test_token_shards_stream_from_the_bucket_as_from_disk(bucket, tmp_path):
    write_synthetic_shards(tmp_path / "shards", n_text=200, n_pairs=100, row_group_rows=32)
    remote = location(f"{bucket}/shards")
    remote.upload_from(tmp_path / "shards")
    for source in ("text", "pairs"):
        here = ShardStream(tmp_path / "shards" / source, "train", seed=3)
        there = ShardStream(remote / source, "train", seed=3)
        assert len(here) == len(there) and len(here.groups) == len(there.groups) > 1
        assert here.take(37, 50) == there.take(37, 50)  # across row groups and the epoch seam
    # the run's name does not depend on where the same shards are kept
    job = dict(name="r", model=M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8),
               report_dir=str(tmp_path / "r"), workers=WorkersConfig(storage_path=f"{bucket}/ray"))
    assert run_fingerprint(PretrainJob(**job, shard_dir=str(tmp_path / "shards"))) == run_fingerprint(
        PretrainJob(**job, shard_dir=remote.uri))


def _checkpoint(run, step: int, *, complete=True, state=None):
    directory = run / f"step-{step:07d}"
    (directory / "model" / "shard-0.bin").write_bytes(b"w")
    (directory / STATE_FILE).write_text(json.dumps({"step": step}) if state is None else state)
    if complete:
        (directory / COMPLETE).write_text("all ranks uploaded\n")
    return directory


def test_checkpoints_in_the_bucket_resume_from_the_newest_complete_and_readable(bucket, caplog):
    run = location(f"{bucket}/ray/run-abc")
    assert newest_usable(run) is None  # nothing there yet: a fresh start
    _checkpoint(run, 8)
    _checkpoint(run, 16, state='{"step": 16, "hist')  # cut short
    _checkpoint(run, 24, complete=False)  # killed mid-upload
    assert newest_usable(run).uri == f"{bucket}/ray/run-abc/step-0000008"
    # an object store cannot rename a directory: the damaged one is marked with the reason
    assert "JSONDecodeError" in (run / "step-0000016" / SET_ASIDE).read_text()
    assert "JSONDecodeError" in caplog.text
    assert newest_usable(run).name == "step-0000008"  # and skipped from then on


LOAD_AND_SCORE = """
import json, sys, torch
from m6_pipeline.model.pretrained import load_pretrained
model, card = load_pretrained(sys.argv[1])
ids = torch.arange(12).reshape(2, 6) % 40
with torch.no_grad():
    hidden = model(ids, torch.ones_like(ids), torch.tensor([3, 3]), torch.tensor([6, 6]))
print(json.dumps({"card": card, "hidden": hidden.flatten()[:64].tolist()}))
"""


def test_a_model_exported_to_the_bucket_loads_in_a_fresh_process(bucket, tmp_path):
    config = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8)
    torch.manual_seed(0)
    model = M6Model(config).eval()
    from safetensors.torch import save_model

    save_model(model, str(tmp_path / "model.safetensors"))
    uri = f"{bucket}/models/tiny"
    card = export_pretrained(tmp_path / "model.safetensors", config, {"run": "test"}, uri)
    assert card["model_dir"] == uri and card["weights"] == "model.safetensors"
    assert sorted(c.name for c in location(uri).children()) == ["m6_config.json", "model.safetensors", "model_card.json"]

    done = subprocess.run([sys.executable, "-c", LOAD_AND_SCORE, uri], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    ids = torch.arange(12).reshape(2, 6) % 40
    with torch.no_grad():
        expected = model(ids, torch.ones_like(ids), torch.tensor([3, 3]), torch.tensor([6, 6])).flatten()[:64]
    assert loaded["hidden"] == expected.tolist()  # bit-identical weights
    assert loaded["card"]["model_dir"] == uri and loaded["card"]["run"] == "test"
    # and in this process, through the same call the downstream stages make
    assert torch.equal(load_pretrained(uri)[0].embeddings.word.weight, model.embeddings.word.weight)
    # an export's weights fetched from the bucket (what the driver does with a final checkpoint)
    weights = fetch_weights(location(uri), tmp_path / "fetched")
    assert weights.name == "model.safetensors" and weights.read_bytes() == (tmp_path / "model.safetensors").read_bytes()


def test_finetuning_starts_from_a_local_copy_of_an_export_in_the_bucket(bucket, tmp_path, monkeypatch):
    """conf/cluster exports pretrain_base to the bucket; the finetuning and prompting stages read
    the export's files themselves, from one local copy that is fetched again only when the export
    changes (so a finetuning run's input identity, and its resume, hold)."""
    from safetensors.torch import save_model

    from m6_pipeline.data.file_identity import model_identity
    from m6_pipeline.tasks.finetune.models import pretrained_model_dir
    from pipelines.finetune_tasks.nodes import parse_job

    config = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8)
    save_model(M6Model(config), str(tmp_path / "model.safetensors"))
    uri = f"{bucket}/pretrain_base/model"
    card = export_pretrained(tmp_path / "model.safetensors", config, {"run": "first"}, uri)
    copies = tmp_path / "copies"

    first = local_model_dir(uri, copies)
    assert first.parent == copies and load_pretrained(first)[1]["run"] == "first"
    identity = model_identity(first)
    assert local_model_dir(uri, copies) == first and model_identity(first) == identity  # not fetched again
    export_pretrained(tmp_path / "model.safetensors", config, {"run": "second"}, uri)
    assert load_pretrained(local_model_dir(uri, copies))[1]["run"] == "second"
    assert model_identity(first) != identity  # a new export is a new input: no stale resume
    assert local_model_dir(tmp_path / "here") == tmp_path / "here"  # a local path stays as it is

    # the stage's job, from the card as Kedro hands it over, and from a URI in the parameters
    monkeypatch.chdir(tmp_path)  # the copies' default place is relative: data/06_models/remote
    job = parse_job("itm")({"out_dir": str(tmp_path / "itm"), "training": {"precision": "fp32"}}, card)
    assert job.pretrained_dir.is_dir() and (job.pretrained_dir / "m6_config.json").is_file()
    assert pretrained_model_dir(uri, {"model_dir": "unused"}) == job.pretrained_dir
    with pytest.raises(FileNotFoundError, match="pipeline=pretrain_base"):
        local_model_dir(f"{bucket}/nothing/here", copies)
