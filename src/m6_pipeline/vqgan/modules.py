"""The convolutional encoder and decoder of VQGAN (taming-transformers' `modules/diffusionmodules`
cut, written small): residual blocks with GroupNorm and SiLU, strided-conv downsampling,
nearest-neighbour upsampling, and single-head self-attention at the code grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from m6_pipeline.vqgan.config import VQGANConfig


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups that divide `channels` (32 at taming's widths)."""
    groups = 32
    while channels % groups:
        groups //= 2
    return nn.GroupNorm(groups, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over the positions of a feature map (one head, as taming)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, 1, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [b, 1, hw, c]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # taming's asymmetric padding


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _middle(channels: int, attention: bool) -> nn.Sequential:
    parts = [ResnetBlock(channels, channels)]
    if attention:
        parts.append(AttentionBlock(channels))
    parts.append(ResnetBlock(channels, channels))
    return nn.Sequential(*parts)


class Encoder(nn.Module):
    """Images [b, 3, r, r] in [-1, 1] -> latents [b, d_latent, grid, grid]."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        widths = [config.channels * m for m in config.channel_mult]
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        c_in = widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.n_res_blocks):
                layers.append(ResnetBlock(c_in, width))
                c_in = width
            if level < len(widths) - 1:
                layers.append(Downsample(width))
        self.down = nn.Sequential(*layers)
        self.middle = _middle(c_in, config.attention)
        self.norm_out = group_norm(c_in)
        self.conv_out = nn.Conv2d(c_in, config.d_latent, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.middle(self.down(self.conv_in(x)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Quantised latents [b, d_latent, grid, grid] -> images [b, 3, r, r] (unbounded; the
    training targets are in [-1, 1])."""

    def __init__(self, config: VQGANConfig):
        super().__init__()
        widths = [config.channels * m for m in config.channel_mult][::-1]
        self.conv_in = nn.Conv2d(config.d_latent, widths[0], 3, padding=1)
        self.middle = _middle(widths[0], config.attention)
        layers: list[nn.Module] = []
        c_in = widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.n_res_blocks + 1):
                layers.append(ResnetBlock(c_in, width))
                c_in = width
            if level < len(widths) - 1:
                layers.append(Upsample(width))
        self.up = nn.Sequential(*layers)
        self.norm_out = group_norm(c_in)
        self.conv_out = nn.Conv2d(c_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.up(self.middle(self.conv_in(z)))
        return self.conv_out(F.silu(self.norm_out(h)))
