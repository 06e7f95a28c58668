"""The identity of a run's input files: a rewrite is new, an untouched file is the same."""

from __future__ import annotations

import os

import pytest

from m6_pipeline.data.file_identity import files_identity, model_identity
from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.config import MoEConfig
from m6_pipeline.model.pretrained import export_pretrained
from m6_pipeline.model.sharded_weights import save_expert_sharded


def test_untouched_files_keep_their_identity_and_any_rewrite_changes_it(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.write_bytes(b"features")
    b.write_bytes(b"more")
    first = files_identity([a, b])
    assert files_identity([b, a]) == first  # order does not matter
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 1_000_000))  # same bytes, written again
    touched = files_identity([a, b])
    assert touched != first
    b.write_bytes(b"MOREMORE")  # other bytes
    assert files_identity([a, b]) not in {first, touched}


def test_missing_or_no_input_files_are_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.parquet"):
        files_identity([tmp_path / "gone.parquet"])
    with pytest.raises(ValueError, match="wrote nothing"):
        files_identity([])


def tiny(moe: MoEConfig | None = None) -> M6Config:
    return M6Config.of_size("tiny", vocab_size=50, n_patches=4, d_patch_feature=8, max_positions=64, moe=moe)


def test_a_model_export_is_identified_by_every_weight_file(tmp_path):
    from safetensors.torch import save_model

    dense = tmp_path / "dense"
    dense.mkdir()
    save_model(M6Model(tiny(), seed=0), str(dense / "model.safetensors"))
    export_pretrained(dense / "model.safetensors", tiny(), {}, tmp_path / "exported")
    first = model_identity(tmp_path / "exported")
    export_pretrained(dense / "model.safetensors", tiny(), {}, tmp_path / "exported")  # exported again
    assert model_identity(tmp_path / "exported") != first

    config = tiny(MoEConfig(n_experts=4, every=2))
    sharded = tmp_path / "sharded"
    save_expert_sharded(M6Model(config, seed=0), sharded, dense=True, experts=True)
    export_pretrained(sharded / "model.safetensors.index.json", config, {}, tmp_path / "moe")
    before = model_identity(tmp_path / "moe")
    shard = next((tmp_path / "moe").glob("model-experts-*.safetensors"))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000))
    assert model_identity(tmp_path / "moe") != before
