"""ResNet-50 (v1.5, stride in the 3x3 conv) with torchvision's module names, so torchvision's
ImageNet state dict loads as is. Written out because torchvision's CPU wheel is not installable
beside this torch; the features are the 2048-d global average pool before `fc`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from m6_pipeline.features.patches import normalise


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet50(nn.Module):
    d_feature = 2048

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate(
            [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1
        ):
            layer = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layer += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images [n, 3, h, w] -> pooled features [n, 2048]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))

    @torch.no_grad()
    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches [n, 3, p, p] in [0, 1] -> [n, 2048] (ImageNet normalisation inside)."""
        return self.features(normalise(patches))


class MissingWeightsError(FileNotFoundError):
    pass


def load_resnet50(weights: str | Path | None) -> ResNet50:
    """ResNet-50 in eval mode with the ImageNet weights of a local torchvision state dict
    (`.pth`/`.pt` or `.safetensors`). Never random weights: a missing file raises."""
    if weights is None or not Path(weights).is_file():
        raise MissingWeightsError(
            f"ResNet-50 weights not found at {weights!s}: this machine cannot download them. "
            "Put torchvision's ImageNet resnet50 state dict (e.g. resnet50-11ad3fa6.pth, or its "
            "safetensors) there and set `features.resnet50_weights` to its path, or use "
            "`features.extractor: patch_autoencoder`, which trains on the corpus images."
        )
    path = Path(weights)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    with torch.device("meta"):  # no random init to throw away: every tensor comes from the file
        model = ResNet50()
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()
