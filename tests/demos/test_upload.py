"""Uploads are checked before decoding: each kind of hostile or broken file is rejected with
its reason; unusual colour modes are accepted and normalised to RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from m6_pipeline.corpus.reasons import Reason
from m6_pipeline.demos.config import UploadLimits
from m6_pipeline.demos.upload import UploadRejected, validate_upload
from tests.demos.conftest import bomb_png

LIMITS = UploadLimits()


def _bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _noise(side: int = 100) -> Image.Image:
    """Incompressible pixels: a cut file is cut inside the pixel data, a file is large."""
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))


def _reason(data: bytes, limits: UploadLimits = LIMITS) -> str:
    with pytest.raises(UploadRejected) as info:
        validate_upload(data, limits)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{info.value.reason}: ")  # the reason and what was found
    return info.value.reason


@pytest.mark.parametrize("side", [100_000, 6_000])  # PIL's own guard; over max_pixels only
def test_a_decompression_bomb_is_rejected_from_its_header(side):
    bomb = bomb_png(side)
    assert len(bomb) < 1000
    assert _reason(bomb) == Reason.IMAGE_DECOMPRESSION_BOMB


def test_a_truncated_png_is_rejected():
    whole = _bytes(_noise())
    assert _reason(whole[: len(whole) // 2]) == Reason.IMAGE_TRUNCATED


def test_zero_bytes_are_rejected():
    assert _reason(b"") == Reason.IMAGE_EMPTY_FILE


def test_a_text_file_is_rejected():
    assert _reason("这不是图片，是一段文字。\n".encode()) == Reason.IMAGE_NOT_DECODABLE


def test_an_oversized_upload_is_rejected_before_decoding():
    data = _bytes(_noise(200))
    assert _reason(data, UploadLimits(max_bytes=len(data) - 1)) == Reason.IMAGE_TOO_LARGE_FILE
    assert validate_upload(data, UploadLimits(max_bytes=len(data)))  # at the cap: kept


def test_a_tiny_image_is_rejected():
    assert _reason(_bytes(Image.new("RGB", (20, 20), "red"))) == Reason.IMAGE_TOO_SMALL


def _decoded(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


def test_a_cmyk_jpeg_is_accepted_as_rgb():
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # no black, full magenta + yellow: red
    image = _decoded(validate_upload(_bytes(cmyk, "JPEG", quality=95), LIMITS))
    assert image.mode == "RGB" and image.size == (64, 48)
    red, green, blue = np.asarray(image)[24, 32].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_a_transparent_palette_png_is_accepted_on_white():
    palette = Image.new("P", (50, 50), 0)
    palette.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    palette.paste(1, (0, 0, 25, 50))  # left half red, right half the transparent blue
    image = _decoded(validate_upload(_bytes(palette, transparency=0), LIMITS))
    pixels = np.asarray(image)
    assert image.mode == "RGB"
    assert tuple(pixels[25, 10]) == (255, 0, 0)
    assert tuple(pixels[25, 40]) == (255, 255, 255)  # transparency composited onto white
