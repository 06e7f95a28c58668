"""The expert-sharded form of an MoE M6 in one process: written by four expert-parallel ranks
(ExpertParallel without a process group: export and load need none), read back at sizes 1, 2
and 4 from it and from the single file, and refused with the missing or repeated experts named.
(Over gloo, with logits: tests/training/test_clipping_and_export_gloo.py.)"""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_model

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.moe import ExpertParallel
from m6_pipeline.model.pretrained import WEIGHTS, export_pretrained, load_pretrained
from m6_pipeline.model.sharded_weights import DENSE_FILE, INDEX, expert_names, load_weights, save_expert_sharded

N_EXPERTS = 8


def moe_config() -> M6Config:
    return M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8, max_positions=16,
                            moe={"n_experts": N_EXPERTS, "router_centering": True})


@pytest.fixture
def full(tmp_path):
    """A model holding all 8 experts (EP=1) with every weight and the gate's running mean set
    away from its initialisation, and its single-file form."""
    torch.manual_seed(3)
    model = M6Model(moe_config())
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(torch.randn_like(tensor))
    save_model(model, str(tmp_path / "single.safetensors"))
    return model


def export_at_ep4(tmp_path, source):
    """Each of 4 expert-parallel ranks loads its 2 experts from `source` and writes them."""
    for rank in range(4):
        shard = M6Model(moe_config(), expert_parallel=ExpertParallel(None, 4, rank))
        load_weights(shard, source)
        save_expert_sharded(shard, tmp_path / "ep4", dense=rank == 0, experts=True)
    return tmp_path / "ep4" / INDEX


def assert_holds(model: M6Model, full: M6Model, first: int, end: int) -> None:
    reference, names = full.state_dict(), set(expert_names(full))
    for name, tensor in model.state_dict().items():
        expected = reference[name][first:end] if name in names else reference[name]
        assert torch.equal(tensor, expected), name


def test_each_file_holds_its_experts_and_the_dense_weights_once(tmp_path, full):
    index = json.loads(export_at_ep4(tmp_path, tmp_path / "single.safetensors").read_text())
    assert [(s["first"], s["end"]) for s in index["expert_shards"]] == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert set(index["weight_map"]) == set(full.state_dict()) - set(expert_names(full))
    assert "blocks.1.ffn.router_mean" in index["weight_map"]  # the persistent buffer too
    for shard in index["expert_shards"]:
        with safe_open(str(tmp_path / "ep4" / shard["file"]), "pt") as f:
            assert set(f.keys()) == set(expert_names(full))  # no dense weight repeated
            assert f.metadata()["first_expert"] == str(shard["first"])
            assert f.get_slice("blocks.1.ffn.w1").get_shape()[0] == 2


@pytest.mark.parametrize("ep_size", [1, 2, 4])
def test_the_sharded_and_the_single_file_forms_load_at_any_expert_parallel_size(tmp_path, full, ep_size):
    sharded = export_at_ep4(tmp_path, tmp_path / "single.safetensors")
    for weights in (sharded, tmp_path / "single.safetensors"):
        for rank in range(ep_size):
            model = M6Model(moe_config(), expert_parallel=ExpertParallel(None, ep_size, rank))
            assert load_weights(model, weights) == ([], [])
            per_rank = N_EXPERTS // ep_size
            assert_holds(model, full, rank * per_rank, (rank + 1) * per_rank)


def test_load_pretrained_reads_the_sharded_export_and_replaces_a_stale_single_file(tmp_path, full):
    model_dir = tmp_path / "model"
    export_pretrained(tmp_path / "single.safetensors", moe_config(), {"run": "old"}, model_dir)
    card = export_pretrained(export_at_ep4(tmp_path, tmp_path / "single.safetensors"), moe_config(),
                             {"run": "new"}, model_dir)
    assert card["weights"] == INDEX and not (model_dir / WEIGHTS).exists()
    model, card = load_pretrained(model_dir)
    assert card["run"] == "new" and not model.training
    assert_holds(model, full, 0, N_EXPERTS)


def test_a_missing_or_repeated_expert_range_is_named(tmp_path, full):
    index_path = export_at_ep4(tmp_path, tmp_path / "single.safetensors")
    index = json.loads(index_path.read_text())
    shards = index["expert_shards"]

    def load_with(expert_shards):
        index_path.write_text(json.dumps({**index, "expert_shards": expert_shards}))
        load_weights(M6Model(moe_config()), index_path)

    with pytest.raises(ValueError, match=r"missing \['\[2, 4\)'\], repeated none"):
        load_with([shards[0], *shards[2:]])
    with pytest.raises(ValueError, match=r"missing \['\[6, 8\)'\]"):
        load_with(shards[:3])
    with pytest.raises(ValueError, match=r"repeated \['\[2, 4\) in model-experts-00002-00004"):
        load_with([*shards, {"file": "model-experts-00002-00004.safetensors", "first": 2, "end": 4}])
    index_path.write_text(json.dumps(index))
    (tmp_path / "ep4" / shards[1]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"holds experts \[2, 4\)"):
        load_weights(M6Model(moe_config()), index_path)
    # a rank that holds none of the lost experts never opens that file
    load_weights(M6Model(moe_config(), expert_parallel=ExpertParallel(None, 2, 1)), index_path)
    (tmp_path / "ep4" / DENSE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="dense weights"):
        load_weights(M6Model(moe_config(), expert_parallel=ExpertParallel(None, 2, 1)), index_path)
