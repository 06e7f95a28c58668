"""Images to patches: row-major order by position, shapes, decode errors, configuration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from m6_pipeline.features import FeaturesConfig, split_patches
from m6_pipeline.features.patches import ImageDecodeError, decode_image, image_patches, join_patches

QUADRANTS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255,) * 3}


def test_patches_of_coloured_quadrants_come_in_row_major_order(make_png):
    image = np.zeros((96, 96, 3), np.uint8)
    image[:48, :48], image[:48, 48:] = QUADRANTS["red"], QUADRANTS["green"]
    image[48:, :48], image[48:, 48:] = QUADRANTS["blue"], QUADRANTS["white"]
    expected = [QUADRANTS[c] for c in ("red", "green", "blue", "white")]
    for size in (96, 32):  # as stored, and resized (the filter blurs only the borders)
        patches = image_patches([make_png(image)], ["q"], image_size=size, grid=2)
        assert patches.shape == (1, 4, 3, size // 2, size // 2)
        centres = patches[0, :, :, size // 4, size // 4]
        assert [tuple((c * 255).round().int().tolist()) for c in centres] == expected


@settings(max_examples=25, deadline=None)
@given(
    grid=st.integers(1, 6),
    patch=st.integers(1, 9),
    batch=st.integers(1, 3),
    channels=st.sampled_from([1, 3]),
)
def test_patch_k_is_the_cell_at_row_k_div_grid_column_k_mod_grid(grid, patch, batch, channels):
    size = grid * patch
    images = torch.arange(batch * channels * size * size, dtype=torch.float32).reshape(
        batch, channels, size, size
    )
    patches = split_patches(images, grid)
    assert patches.shape == (batch, grid * grid, channels, patch, patch)
    for k in range(grid * grid):
        row, col = divmod(k, grid)
        cell = images[:, :, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch]
        assert torch.equal(patches[:, k], cell)
    assert torch.equal(join_patches(patches, grid), images)


@settings(max_examples=15, deadline=None)
@given(width=st.integers(8, 120), height=st.integers(8, 120), size=st.sampled_from([16, 32, 48]))
def test_any_image_resizes_to_the_square(make_png, width, height, size):
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3))
    decoded = decode_image(make_png(pixels), size)
    assert decoded.shape == (size, size, 3) and decoded.dtype == np.uint8


def test_an_image_that_does_not_decode_names_its_record():
    with pytest.raises(ImageDecodeError, match="catalogue/000042"):
        decode_image(b"not a png", 32, "catalogue/000042")


def test_grid_must_divide_the_image():
    with pytest.raises(ValueError, match="grid"):
        split_patches(torch.zeros(1, 3, 10, 10), 3)


def test_config_checks_what_each_extractor_needs():
    assert FeaturesConfig(image_size=64, grid=4).patch_size == 16
    with pytest.raises(ValidationError, match="not a multiple of grid"):
        FeaturesConfig(image_size=60, grid=8)
    with pytest.raises(ValidationError, match="d_feature 2048"):
        FeaturesConfig(extractor="resnet50", image_size=256, grid=4, d_feature=128)
    with pytest.raises(ValidationError, match=">= 32 px"):
        FeaturesConfig(extractor="resnet50", image_size=64, grid=4, d_feature=2048)
    with pytest.raises(ValidationError, match="multiple of 4"):
        FeaturesConfig(image_size=36, grid=6)
    FeaturesConfig(extractor="resnet50", image_size=256, grid=4, d_feature=2048)
