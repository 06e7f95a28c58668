"""ResNet-50 with torchvision's names: the key list, a state-dict roundtrip through both file
formats, pooled features, and the error when no weights are at hand."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from m6_pipeline.features import MissingWeightsError, ResNet50, load_resnet50

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def torchvision_resnet50_keys() -> list[str]:
    """The state-dict keys of torchvision.models.resnet50(), written out by hand."""
    keys = ["conv1.weight", *(f"bn1.{p}" for p in BN)]
    for layer, blocks in enumerate([3, 4, 6, 3], start=1):
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            for i in (1, 2, 3):
                keys += [f"{prefix}.conv{i}.weight", *(f"{prefix}.bn{i}.{p}" for p in BN)]
            if block == 0:
                keys += [
                    f"{prefix}.downsample.0.weight",
                    *(f"{prefix}.downsample.1.{p}" for p in BN),
                ]
    return keys + ["fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return ResNet50().eval()


def test_state_dict_keys_match_torchvision(resnet):
    keys = list(resnet.state_dict())
    assert keys == torchvision_resnet50_keys()
    assert len(keys) == 320
    pattern = re.compile(r"^(conv1|bn1|fc|layer[1-4]\.\d+\.(conv[123]|bn[123]|downsample\.[01]))\.")
    assert all(pattern.match(k) for k in keys)
    assert sum(p.numel() for p in resnet.parameters()) == 25_557_032  # torchvision's count


def test_weights_roundtrip_through_both_file_formats(resnet, tmp_path):
    state = resnet.state_dict()
    torch.save(state, tmp_path / "resnet50.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "resnet50.safetensors"))
    for suffix in (".pth", ".safetensors"):
        loaded = load_resnet50(tmp_path / f"resnet50{suffix}")
        assert not loaded.training
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, state[key]), (suffix, key)
    patches = torch.rand(2, 3, 32, 32)
    features = loaded.embed(patches)
    assert features.shape == (2, 2048)
    assert torch.allclose(features, resnet.embed(patches), atol=1e-5)


def test_missing_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(MissingWeightsError, match="resnet50_weights.*patch_autoencoder"):
        load_resnet50(tmp_path / "nowhere.pth")
    with pytest.raises(MissingWeightsError, match="cannot download"):
        load_resnet50(None)
