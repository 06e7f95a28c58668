"""Images to patches (§3.1): decode, resize to a square, cut into a grid of patches in
row-major order (left to right, then top to bottom)."""

from __future__ import annotations

import io
from typing import Protocol

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchExtractor(Protocol):
    """What extraction needs of a feature extractor."""

    d_feature: int

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """[n, 3, p, p] float pixels in [0, 1] -> [n, d_feature]."""
        ...


class ImageDecodeError(ValueError):
    pass


def decode_image(png: bytes, image_size: int, record_id: str = "?") -> np.ndarray:
    """PNG (or any Pillow format) bytes -> RGB uint8 [image_size, image_size, 3], resized with
    a bicubic filter (antialiased when shrinking)."""
    try:
        with Image.open(io.BytesIO(png)) as image:
            rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as error:  # Pillow raises several types for a broken file
        raise ImageDecodeError(
            f"pair {record_id!r}: image does not decode ({error}); the corpus "
            "stage should have quarantined it: rerun it"
        ) from error


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [batch, h, w, 3] -> float [batch, 3, h, w] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def split_patches(images: torch.Tensor, grid: int) -> torch.Tensor:
    """[batch, c, s, s] -> [batch, grid*grid, c, s/grid, s/grid]; patch k sits at row k // grid,
    column k % grid of the image."""
    batch, channels, height, width = images.shape
    if height != width or height % grid:
        raise ValueError(f"images of {height}x{width} do not split into a {grid}x{grid} grid")
    p = height // grid
    patches = images.reshape(batch, channels, grid, p, grid, p)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(batch, grid * grid, channels, p, p)


def join_patches(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """The inverse of split_patches: [batch, grid*grid, c, p, p] -> [batch, c, s, s]."""
    batch, _, channels, p, _ = patches.shape
    images = patches.reshape(batch, grid, grid, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return images.reshape(batch, channels, grid * p, grid * p)


def normalise(patches: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Per-channel standardisation of [..., 3, h, w] pixels in [0, 1] (ImageNet statistics)."""
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=patches.dtype).reshape(shape)
    std_t = torch.tensor(std, dtype=patches.dtype).reshape(shape)
    return (patches - mean_t) / std_t


def image_patches(pngs: list[bytes], ids: list[str], image_size: int, grid: int) -> torch.Tensor:
    """Encoded images -> float patches [batch, grid*grid, 3, p, p] in [0, 1]."""
    images = np.stack(
        [decode_image(png, image_size, record_id) for png, record_id in zip(pngs, ids, strict=True)]
    )
    return split_patches(to_tensor(images), grid)
