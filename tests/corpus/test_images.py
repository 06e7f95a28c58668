"""Safe decoding and RGB normalisation: one test per kind of bad or unusual image bytes."""

from __future__ import annotations

import io
import pickle
import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.images import RejectedImage, decode_image, encode_image
from m6_pipeline.corpus.reasons import Reason

RULES = ImageRules()


def _bytes(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _noise(width: int = 120, height: int = 100, seed: int = 0) -> Image.Image:
    """Incompressible pixels, so a cut file is cut inside the pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _rejected(data: bytes, rules: ImageRules = RULES) -> RejectedImage:
    with pytest.raises(RejectedImage) as info:
        decode_image(data, rules)
    return info.value


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 100x100 PNG whose IHDR is patched to declare width x height (CRC fixed)."""
    data = bytearray(_bytes(Image.new("RGB", (100, 100), "white")))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("side, evidence", [
    (100_000, "10000000000 pixels"),  # 10^10 pixels, ~30 GB as RGB: PIL's own guard fires first
    (8_000, "8000x8000"),  # 64 Mpx: under PIL's limit, over max_pixels (40 Mpx)
])
def test_decompression_bomb_is_rejected_from_the_header_without_allocating(side, evidence):
    bomb = _png_declaring(side, side)
    assert len(bomb) < 1000
    tracemalloc.start()
    try:
        rejected = _rejected(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rejected.reason is Reason.IMAGE_DECOMPRESSION_BOMB
    assert evidence in rejected.detail
    assert peak < 2_000_000, f"peak {peak} bytes while rejecting a bomb"


def test_pil_bomb_guard_maps_to_bomb_without_leaking_global_state():
    before_pixels, before_filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    lenient = ImageRules(max_pixels=10**12)  # our limit off: PIL's own guard must still hold
    for side in (10_000, 100_000):  # PIL warns (>89 Mpx) then raises (>179 Mpx)
        assert _rejected(_png_declaring(side, side), lenient).reason is Reason.IMAGE_DECOMPRESSION_BOMB
    assert Image.MAX_IMAGE_PIXELS == before_pixels
    assert list(warnings.filters) == before_filters
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_truncated(fmt: str):
    data = _bytes(_noise(), fmt)
    rejected = _rejected(data[: len(data) // 2])
    assert rejected.reason is Reason.IMAGE_TRUNCATED, rejected.detail
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_zero_byte_file_is_empty():
    assert _rejected(b"").reason is Reason.IMAGE_EMPTY_FILE


def test_file_over_the_byte_limit_is_too_large():
    data = _bytes(_noise())
    rejected = _rejected(data, ImageRules(max_file_bytes=len(data) - 1))
    assert rejected.reason is Reason.IMAGE_TOO_LARGE_FILE
    assert "max_file_bytes" in rejected.detail


def test_text_file_named_jpg_is_not_decodable(tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("这不是图片 / this is not an image\n" * 20, encoding="utf-8")
    assert _rejected(fake.read_bytes()).reason is Reason.IMAGE_NOT_DECODABLE


def test_corrupt_header_is_not_decodable():
    data = bytearray(_bytes(_noise()))
    data[29:33] = b"\0\0\0\0"  # IHDR CRC broken
    assert _rejected(bytes(data)).reason is Reason.IMAGE_NOT_DECODABLE


def test_tiny_image_is_too_small_and_5000_pixels_is_enough():
    rejected = _rejected(_bytes(Image.new("RGB", (70, 70), "red")))  # 4900 px
    assert rejected.reason is Reason.IMAGE_TOO_SMALL
    assert "4900" in rejected.detail
    assert decode_image(_bytes(_noise(100, 50)), RULES).size == (100, 50)  # exactly 5000 px


def test_cmyk_jpeg_becomes_rgb():
    red_cmyk = Image.new("CMYK", (100, 80), (0, 255, 255, 0))
    data = _bytes(red_cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    img = decode_image(data, RULES)
    assert img.mode == "RGB"
    assert np.abs(np.asarray(img, dtype=int) - [255, 0, 0]).max() <= 8


def test_16_bit_grey_png_is_scaled_not_clipped():
    values = np.linspace(0, 60_000, 100 * 100).reshape(100, 100).astype(np.uint16)
    source = Image.fromarray(values)
    assert source.mode == "I;16"
    img = decode_image(_bytes(source), RULES)
    grey = np.asarray(img)[..., 0].astype(int)
    assert (np.asarray(img)[..., 0] == np.asarray(img)[..., 2]).all()
    np.testing.assert_allclose(grey, np.rint(values.astype(np.float64) * 255 / 65535), atol=1)
    assert grey.max() == round(60_000 * 255 / 65535)  # 233: clipping would give 255
    assert len(np.unique(grey)) > 200  # the full 8-bit range is used, not a few clipped levels


def test_palette_png_with_transparency_is_composited_on_white():
    img = Image.new("P", (100, 100), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black (transparent), 1 red
    img.paste(1, (0, 0, 50, 100))
    data = _bytes(img, transparency=0)
    out = np.asarray(decode_image(data, RULES))
    assert (out[:, :50] == [255, 0, 0]).all()
    assert (out[:, 50:] == [255, 255, 255]).all()  # transparent black shows as white


def test_palette_with_alpha_palette_is_composited_on_white():
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 50, 100))
    data = _bytes(img.quantize(colors=2, method=Image.Quantize.FASTOCTREE))
    out = np.asarray(decode_image(data, RULES))
    assert (out[:, 50:] == [255, 255, 255]).all()


def test_rgba_is_composited_on_white():
    rgba = np.zeros((100, 100, 4), dtype=np.uint8)  # transparent black
    rgba[:, 40:70] = [0, 0, 0, 128]  # half-transparent black
    rgba[:, 70:] = [0, 0, 255, 255]  # opaque blue
    out = np.asarray(decode_image(_bytes(Image.fromarray(rgba)), RULES)).astype(int)
    assert (out[:, :40] == 255).all()
    assert np.abs(out[:, 40:70] - 127).max() <= 1
    assert (out[:, 70:] == [0, 0, 255]).all()


@pytest.mark.parametrize("mode, value, expected", [
    ("1", 1, 255), ("L", 77, 77), ("LA", (0, 0), 255), ("F", 0.5, 128), ("I", 65535, 255),
    ("I", 200, 200),
])
def test_other_modes_become_8_bit_rgb(mode, value, expected):
    img = Image.new(mode, (100, 60), value)
    fmt = "TIFF" if mode in ("F", "I") else "PNG"
    out = decode_image(_bytes(img, fmt), RULES)
    assert (out.mode, out.size) == ("RGB", (100, 60))
    assert np.abs(np.asarray(out, dtype=int) - expected).max() <= 1


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (120, 60), "white")
    img.paste((255, 0, 0), (0, 0, 20, 60))  # red band on the left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = decode_image(_bytes(img, "JPEG", exif=exif, quality=95), RULES)
    assert out.size == (60, 120)
    top = np.asarray(out)[:10].reshape(-1, 3).mean(axis=0)
    assert top[0] > 200 and top[1] < 60  # the left band is now on top


def test_animated_gif_keeps_the_first_frame():
    frames = [Image.new("RGB", (100, 100), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = decode_image(buf.getvalue(), RULES)
    assert out.getpixel((50, 50)) == (255, 0, 0)


def test_decoded_image_is_detached_and_carries_no_metadata():
    out = decode_image(_bytes(_noise(), "PNG", icc_profile=b"fake-profile"), RULES)
    assert out.info == {}
    assert pickle.loads(pickle.dumps(out)).tobytes() == out.tobytes()


def test_encode_image_round_trips_and_names_a_bad_format():
    img = _noise()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_image(img, "PNG")))), np.asarray(img))
    assert Image.open(io.BytesIO(encode_image(img, "jpg"))).format == "JPEG"
    with pytest.raises(ValueError, match="output_format 'BMPX'"):
        encode_image(img, "BMPX")


def test_rejection_pickles_with_reason_and_detail():
    rejected = pickle.loads(pickle.dumps(RejectedImage(Reason.IMAGE_TRUNCATED, "cut")))
    assert (rejected.reason, rejected.detail) == (Reason.IMAGE_TRUNCATED, "cut")
