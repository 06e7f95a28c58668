"""The perceptual term of the VQGAN loss: an LPIPS-style distance between VGG feature maps.

LPIPS (Zhang et al. 2018) compares unit-normalised VGG16 activations of two images at five
depths. Its ImageNet weights cannot be downloaded here, so:
- given `weights` (a torchvision `vgg16` state dict saved locally, .pth or .safetensors), the
  distance uses the real VGG16 trunk (LPIPS without its learned per-channel heads);
- without weights, the documented substitute is a frozen, randomly initialised VGG-style trunk
  of three stages at half VGG's widths (fixed seed). Random convolutional features still encode
  local structure, edges and colour statistics (Ulyanov et al. 2018; He et al. 2016, "random
  weights" texture synthesis), enough to push reconstructions past a blurry L1 optimum; it is
  named `random_vgg` in every report so that no one mistakes it for LPIPS.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# torchvision's vgg16 `features`: widths, "M" = max-pool; taps after relu1_2 ... relu5_3
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG16_TAPS = (3, 8, 15, 22, 29)
RANDOM_TRUNK = (32, 32, "M", 64, 64, "M", 128, 128, 128)
RANDOM_TAPS = (3, 8, 15)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _trunk(layout: tuple) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, item, 3, padding=1), nn.ReLU(inplace=False)]
            c_in = item
    return nn.Sequential(*layers)


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"perceptual weights {path} not found: save torchvision's vgg16 ImageNet state dict "
            "there, or set loss.perceptual_weights: null for the random-trunk substitute"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class PerceptualLoss(nn.Module):
    def __init__(self, weights: Path | None = None, seed: int = 0):
        super().__init__()
        if weights is not None:
            self.features, self.taps, self.kind = _trunk(VGG16), VGG16_TAPS, "vgg16"
            state = {
                k.removeprefix("features."): v
                for k, v in _load_state(weights).items()
                if k.startswith("features.")
            }
            self.features.load_state_dict(state)
        else:
            self.features, self.taps, self.kind = _trunk(RANDOM_TRUNK), RANDOM_TAPS, "random_vgg"
            generator = torch.Generator().manual_seed(seed)
            for module in self.features:
                if isinstance(module, nn.Conv2d):
                    fan_in = module.in_channels * 9
                    with torch.no_grad():
                        module.weight.normal_(0, (2.0 / fan_in) ** 0.5, generator=generator)
                        module.bias.zero_()
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.features.eval()  # frozen: always in eval mode
        return self

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = ((x + 1) / 2 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i >= self.taps[-1]:
                break
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images [b, 3, r, r] in [-1, 1] -> distance per image [b]: squared differences of
        channel-normalised features, averaged over positions and channels, summed over taps."""
        distance = x.new_zeros(x.shape[0])
        for fx, fy in zip(self._taps(x), self._taps(y)):
            diff = F.normalize(fx, dim=1, eps=1e-10) - F.normalize(fy, dim=1, eps=1e-10)
            distance = distance + diff.pow(2).sum(dim=1).mean(dim=(1, 2))
        return distance
