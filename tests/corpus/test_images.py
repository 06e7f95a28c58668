"""Safe reading, decoding and RGB normalisation: one test per kind of bad or unusual image
file, and per image mode PIL decodes."""

from __future__ import annotations

import errno
import io
import os
import pickle
import struct
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.image_quality import load_quality_scorer
from m6_pipeline.corpus.images import (
    RejectedImage,
    decode_image,
    encode_image,
    normalise_to_rgb,
    read_image_file,
)
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


def _with_peak_memory(call):
    """(call(), the peak bytes Python allocated during it)."""
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("side, evidence", [
    (100_000, "10000000000 pixels"),  # 10^10 pixels, ~30 GB as RGB: PIL's own guard fires first
    (8_000, "8000x8000"),  # 64 Mpx: under PIL's limit, over max_pixels (40 Mpx)
])
def test_decompression_bomb_is_rejected_from_the_header_without_allocating(side, evidence):
    bomb = _png_declaring(side, side)
    assert len(bomb) < 1000
    rejected, peak = _with_peak_memory(lambda: _rejected(bomb))
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


# --- every mode PIL 13 decodes, each from a real file (the mode PIL opens it as is asserted)
# Files are 128x64, one colour in the left half and another in the right; the RGB expected in
# each half (away from the middle, where JPEG rings) follows the module docstring's rules.

_W, _H = 128, 64
WHITE, RED, BLUE = (255, 255, 255), (255, 0, 0), (0, 0, 255)


def _halves(mode: str, left, right) -> Image.Image:
    img = Image.new(mode, (_W, _H), left)
    img.paste(Image.new(mode, (_W // 2, _H), right), (_W // 2, 0))  # pasting a colour: 0 in I;16
    return img


def _palette(*colours) -> Image.Image:
    """A P image: index 0 on the left, 1 on the right, palette entries `colours` (RGB)."""
    img = _halves("P", 0, 1)
    img.putpalette([v for c in colours for v in c])
    return img


def _palette_alpha() -> Image.Image:
    img = _palette(RED, BLUE).convert("PA")
    img.putalpha(_halves("L", 255, 0))
    return img


def _associated_alpha(tiff: bytes) -> bytes:
    """A TIFF saved by PIL with ExtraSamples 2 (straight alpha) rewritten to 1 (premultiplied
    alpha): PIL cannot write such files, other tools do."""
    straight = struct.pack("<HHII", 338, 3, 1, 2)  # tag ExtraSamples, SHORT, count 1, value 2
    assert tiff.count(straight) == 1
    return tiff.replace(straight, struct.pack("<HHII", 338, 3, 1, 1))


def _lab(l_star: float, a: float, b: float) -> tuple[int, int, int]:
    """CIELAB as PIL stores it: L* 0..100 as 0..255, a* and b* offset by 128."""
    return round(l_star * 255 / 100), round(a) + 128, round(b) + 128


MODE_FILES = [  # id, file bytes, mode PIL opens, left RGB, right RGB, tolerance
    ("1 PNG", lambda: _bytes(_halves("1", 1, 0)), "1", WHITE, (0, 0, 0), 0),
    ("1 PNG, tRNS 0", lambda: _bytes(_halves("1", 1, 0), transparency=0), "1", WHITE, WHITE, 0),
    ("L JPEG", lambda: _bytes(_halves("L", 77, 200), "JPEG", quality=95), "L", (77,) * 3, (200,) * 3, 3),
    ("L PNG, tRNS grey", lambda: _bytes(_halves("L", 77, 200), transparency=200), "L", (77,) * 3, WHITE, 0),
    ("LA PNG", lambda: _bytes(_halves("LA", (77, 255), (0, 128))), "LA", (77,) * 3, (127,) * 3, 1),
    ("La TIFF (premultiplied)", lambda: _associated_alpha(
        _bytes(_halves("LA", (77, 255), (50, 128)), "TIFF")), "La", (77,) * 3, (177,) * 3, 1),  # 50 + 127
    ("P PNG", lambda: _bytes(_palette(RED, BLUE)), "P", RED, BLUE, 0),
    ("P PNG, tRNS index", lambda: _bytes(_palette(RED, BLUE), transparency=1), "P", RED, WHITE, 0),
    ("P PNG, tRNS alphas", lambda: _bytes(_palette(RED, BLUE), transparency=bytes([255, 128])), "P",
     RED, (127, 127, 255), 1),
    ("P PNG from RGBA", lambda: _bytes(_halves("RGBA", (255, 0, 0, 255), (0, 0, 0, 0)).quantize(
        colors=2, method=Image.Quantize.FASTOCTREE)), "P", RED, WHITE, 0),
    ("P GIF, tRNS index", lambda: _bytes(_palette(RED, BLUE), "GIF", transparency=1), "P", RED, WHITE, 0),
    ("PA TIFF", lambda: _bytes(_palette_alpha(), "TIFF"), "PA", RED, WHITE, 0),
    ("RGB JPEG", lambda: _bytes(_halves("RGB", (10, 200, 30), (200, 30, 10)), "JPEG", quality=95), "RGB",
     (10, 200, 30), (200, 30, 10), 4),
    ("RGB PNG, tRNS colour", lambda: _bytes(_halves("RGB", RED, (0, 255, 0)), transparency=(0, 255, 0)),
     "RGB", RED, WHITE, 0),
    ("RGBA PNG", lambda: _bytes(_halves("RGBA", (0, 0, 255, 255), (0, 0, 0, 128))), "RGBA",
     BLUE, (127,) * 3, 1),
    ("RGBA WEBP", lambda: _bytes(_halves("RGBA", (0, 0, 255, 255), (0, 0, 0, 0)), "WEBP", lossless=True),
     "RGBA", BLUE, WHITE, 0),
    ("RGBA TIFF (premultiplied)", lambda: _associated_alpha(  # PIL opens it as RGBA, unpremultiplied
        _bytes(_halves("RGBA", (0, 0, 255, 255), (0, 0, 100, 128)), "TIFF")), "RGBA",
     BLUE, (127, 127, 227), 1),
    ("RGBX TIFF", lambda: _bytes(_halves("RGBX", (10, 200, 30, 0), (200, 30, 10, 0)), "TIFF"), "RGB",
     (10, 200, 30), (200, 30, 10), 0),
    ("CMYK JPEG", lambda: _bytes(_halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 128)), "JPEG", quality=95),
     "CMYK", RED, (127,) * 3, 8),
    ("CMYK TIFF", lambda: _bytes(_halves("CMYK", (255, 0, 0, 0), (0, 0, 0, 128)), "TIFF"), "CMYK",
     (0, 255, 255), (127,) * 3, 1),
    ("YCbCr TIFF", lambda: _bytes(_halves("YCbCr", (76, 84, 255), (128, 128, 128)), "TIFF"), "YCbCr",
     RED, (128,) * 3, 3),
    ("LAB TIFF", lambda: _bytes(_halves("LAB", _lab(53.24, 80.09, 67.20), _lab(50, 0, 0)), "TIFF"),
     "LAB", RED, (119,) * 3, 12),  # the CIELAB of sRGB red; L* = 50 is sRGB grey 119
]


def _half_means(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """The RGB of each half, [3] each, and assert each half is one colour."""
    a = np.asarray(img).astype(int)
    left, right = a[:, 8:_W // 2 - 8].reshape(-1, 3), a[:, _W // 2 + 8:-8].reshape(-1, 3)
    assert np.ptp(left, axis=0).max() <= 2 and np.ptp(right, axis=0).max() <= 2
    return left.mean(axis=0), right.mean(axis=0)


@pytest.mark.parametrize("make, opened, left, right, tol", [c[1:] for c in MODE_FILES],
                         ids=[c[0] for c in MODE_FILES])
def test_every_decoded_mode_becomes_the_right_rgb(make, opened, left, right, tol):
    data = make()
    assert Image.open(io.BytesIO(data)).mode == opened  # the mode under test really is decoded
    out = decode_image(data, RULES)
    assert (out.mode, out.size, out.info) == ("RGB", (_W, _H), {})
    got_left, got_right = _half_means(out)
    assert np.abs(got_left - left).max() <= tol, got_left
    assert np.abs(got_right - right).max() <= tol, got_right


@pytest.mark.parametrize("img, left, right", [  # modes no PIL 13 decoder yields, built in memory
    (_halves("RGBa", (255, 0, 0, 255), (0, 0, 0, 128)), RED, (127,) * 3),  # TIFF opens it as RGBA
    (_halves("La", (255, 255), (0, 128)), WHITE, (127,) * 3),
    (_halves("RGBX", (255, 0, 0, 0), (127, 127, 127, 0)), RED, (127,) * 3),  # TIFF, WEBP open RGB
    (_halves("HSV", (0, 255, 255), (0, 0, 127)), RED, (127,) * 3),  # no format stores HSV
    (_halves("I;16L", 65535, 32768), WHITE, (128,) * 3),  # a little-endian TIFF opens as I;16
], ids=["RGBa", "La", "RGBX", "HSV", "I;16L"])
def test_in_memory_modes_become_the_right_rgb(img, left, right):
    out = normalise_to_rgb(img)
    assert out.mode == "RGB"
    got_left, got_right = _half_means(out)
    assert np.abs(got_left - left).max() <= 1 and np.abs(got_right - right).max() <= 1


# --- high-bit grey: every container of 16-bit data, full-range and dark gradients

def _gradient(top: int) -> np.ndarray:
    """[64, 128] uint16: each row climbs 0..top left to right (realistic 16-bit data)."""
    return np.tile(np.linspace(0, top, _W).round().astype(np.uint16), (_H, 1))


def _png16(samples: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG (PIL writes only 16-bit grey): samples [h, w] or [h, w, channels]."""
    h, w = samples.shape[:2]
    raw = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


GREY16_FILES = {  # id: (file bytes of a [64, 128] uint16 array, mode PIL opens)
    "PNG": (lambda v: _bytes(Image.fromarray(v)), "I;16"),
    "hand-written PNG": (lambda v: _png16(v, 0), "I;16"),
    "TIFF little-endian": (lambda v: _bytes(Image.fromarray(v), "TIFF"), "I;16"),
    "TIFF big-endian": (lambda v: _bytes(Image.fromarray(v.astype(">u2")), "TIFF"), "I;16B"),
    "TIFF LZW (libtiff)": (lambda v: _bytes(Image.fromarray(v), "TIFF", compression="tiff_lzw"), "I;16"),
    "PGM": (lambda v: _bytes(Image.fromarray(v), "PPM"), "I"),  # maxval 65535
    "TIFF 32-bit int": (lambda v: _bytes(Image.fromarray(v.astype(np.int32)), "TIFF"), "I"),
    "TIFF 32-bit float": (lambda v: _bytes(Image.fromarray(v.astype(np.float32)), "TIFF"), "F"),
    "TIFF float 0..1": (lambda v: _bytes(Image.fromarray((v / 65535).astype(np.float32)), "TIFF"), "F"),
}


@pytest.mark.parametrize("top", [65535, 4000], ids=["full", "dark"])
@pytest.mark.parametrize("make, opened", GREY16_FILES.values(), ids=GREY16_FILES.keys())
def test_16_bit_grey_maps_0_65535_onto_0_255_in_every_container(make, opened, top):
    values = _gradient(top)
    data = make(values)
    assert Image.open(io.BytesIO(data)).mode == opened
    out = np.asarray(decode_image(data, RULES)).astype(int)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 0] == out[..., 2]).all()
    grey = out[..., 0]
    np.testing.assert_allclose(grey, np.rint(values * (255 / 65535)), atol=1)  # scaled, not clipped
    assert (np.diff(grey, axis=1) >= 0).all()  # the gradient's order is kept
    assert grey.max() == round(top * 255 / 65535)  # 255 / 16: not stretched, not saturated
    assert len(np.unique(grey)) >= (_W if top == 65535 else 17)  # every column distinct; never flat
    if top == 65535:
        assert abs(int(grey[0, np.abs(values[0].astype(int) - 32768).argmin()]) - 128) <= 1  # mid-grey


@pytest.mark.parametrize("container", ["PNG", "TIFF little-endian", "PGM"])
def test_a_16_bit_file_with_every_value_under_256_stays_16_bit_data(container):
    make, _ = GREY16_FILES[container]
    out = np.asarray(decode_image(make(_gradient(200)), RULES))
    assert out.max() == 1  # 200 / 65535 of white, as a viewer shows it; not re-read as 8-bit
    # a 32-bit container declares no range: the same numbers are read as 8-bit data
    as_int32 = decode_image(_bytes(Image.fromarray(_gradient(200).astype(np.int32)), "TIFF"), RULES)
    assert np.asarray(as_int32).max() == 200


def test_signed_16_bit_grey_reads_like_unsigned_and_stretches_only_negative_data():
    def signed_tiff(values: np.ndarray) -> bytes:  # the same 16 bits, tagged SampleFormat 2 (int)
        return _bytes(Image.fromarray(values.astype(np.uint16)), "TIFF", tiffinfo={339: 2})

    dark = signed_tiff(_gradient(4000))
    assert Image.open(io.BytesIO(dark)).mode == "I"
    unsigned = decode_image(GREY16_FILES["TIFF little-endian"][0](_gradient(4000)), RULES)
    assert np.array_equal(np.asarray(decode_image(dark, RULES)), np.asarray(unsigned))
    below_zero = _gradient(4000).astype(np.int16) - 1000  # -1000..3000: no nominal range holds it
    grey = np.asarray(decode_image(signed_tiff(below_zero), RULES))[..., 0].astype(int)
    assert (grey.min(), grey.max()) == (0, 255) and (np.diff(grey, axis=1) >= 0).all()


def test_16_bit_grey_trns_value_is_composited_on_white():
    values = np.where(np.arange(_W) < _W // 2, _gradient(65535), 12345).astype(np.uint16)
    out = np.asarray(decode_image(_bytes(Image.fromarray(values), transparency=12345), RULES))
    assert (out[:, _W // 2:] == 255).all()
    assert out[0, _W // 2 - 1, 0] == round(int(values[0, _W // 2 - 1]) * 255 / 65535)


def test_16_bit_colour_and_grey_alpha_pngs_keep_their_top_byte():
    grey = _gradient(65535)
    colour = np.stack([grey, np.zeros_like(grey), np.full_like(grey, 32768)], -1)  # [h, w, 3]
    rgb = decode_image(_png16(colour, 2), RULES)
    np.testing.assert_allclose(np.asarray(rgb)[..., 0], grey * (255 / 65535), atol=1)
    assert (np.asarray(rgb)[..., 2] == 128).all()
    alpha = np.tile(np.where(np.arange(_W) < _W // 2, 65535, 0), (_H, 1)).astype(np.uint16)
    data = _png16(np.stack([grey, alpha], -1), 4)
    assert Image.open(io.BytesIO(data)).mode == "RGBA"  # PIL 13 opens 16-bit grey + alpha as RGBA
    out = np.asarray(decode_image(data, RULES)).astype(int)
    np.testing.assert_allclose(out[:, : _W // 2, 0], grey[:, : _W // 2] * (255 / 65535), atol=1)
    assert (out[:, _W // 2:] == 255).all()


def _textured_16_bit() -> np.ndarray:
    """[128, 128] uint16 in 20000..65535: a product-like texture every value of which a plain
    convert("RGB") clips to white (the reported quality 0.000)."""
    yy, xx = np.mgrid[0:128, 0:128]
    wave = (np.sin(xx / 3) * np.cos(yy / 5) + 1) / 2
    noise = np.random.default_rng(0).normal(0, 800, wave.shape)
    return np.clip(20000 + 44000 * wave + noise, 20000, 65535).astype(np.uint16)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])
def test_textured_16_bit_grey_passes_the_quality_threshold(fmt):
    data = _bytes(Image.fromarray(_textured_16_bit()), fmt)
    clipped = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.ptp(clipped) == 0  # the bug's input: PIL's own conversion saturates it to white
    score = load_quality_scorer("heuristic")
    assert score(decode_image(data, RULES))["quality"] >= RULES.min_quality
    assert score(Image.open(io.BytesIO(data)))["quality"] >= RULES.min_quality  # undecoded too


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


# --- read_image_file: real files, refused without reading when they are not plain images

def _refused(path, max_file_bytes: int = RULES.max_file_bytes) -> RejectedImage:
    with pytest.raises(RejectedImage) as info:
        read_image_file(path, max_file_bytes)
    return info.value


def test_read_image_file_returns_the_bytes_of_a_regular_file(tmp_path):
    data = _bytes(_noise())
    (tmp_path / "a.png").write_bytes(data)
    assert read_image_file(tmp_path / "a.png", len(data)) == data  # exactly at the cap is kept


def test_read_image_file_refuses_an_oversized_file_before_reading(tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(10 * 10**9)  # 10 GB, sparse: takes no disk, but reading it would take minutes
    rejected, peak = _with_peak_memory(lambda: _refused(huge))
    assert rejected.reason is Reason.IMAGE_TOO_LARGE_FILE
    assert "10000000000 bytes > max_file_bytes 20000000" in rejected.detail
    assert peak < 1_000_000, f"peak {peak} bytes: the file was read"


def test_read_image_file_refuses_a_file_that_grows_after_the_stat(tmp_path, monkeypatch):
    path = tmp_path / "growing.png"
    path.write_bytes(b"x" * 100)
    real_fstat = os.fstat

    def fstat_then_grow(fd):  # the writer appends right after the size was checked
        st = real_fstat(fd)
        with open(path, "ab") as f:
            f.write(b"y" * 100)
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    rejected = _refused(path, 150)
    assert rejected.reason is Reason.IMAGE_TOO_LARGE_FILE and "grew" in rejected.detail


@pytest.mark.timeout(10)
def test_read_image_file_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # no writer: a blocking open or read would wait forever
    started = time.monotonic()
    rejected = _refused(fifo)
    assert time.monotonic() - started < 1.0
    assert rejected.reason is Reason.IMAGE_MISSING and "a FIFO" in rejected.detail


def test_read_image_file_refuses_a_directory_a_symlink_and_a_missing_file(tmp_path):
    (tmp_path / "dir.png").mkdir()
    real = tmp_path / "real.png"
    real.write_bytes(_bytes(_noise()))
    (tmp_path / "link.png").symlink_to(real)
    for name, evidence in (("dir.png", "a directory"), ("link.png", "ELOOP"), ("gone.png", "ENOENT")):
        rejected = _refused(tmp_path / name)
        assert rejected.reason is Reason.IMAGE_MISSING, name
        assert evidence in rejected.detail, rejected.detail


def test_read_image_file_refuses_an_unreadable_file(tmp_path, monkeypatch):
    locked = tmp_path / "locked.png"
    locked.write_bytes(_bytes(_noise()))
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads files whatever their mode: the kernel's answer, simulated
        real_open = os.open

        def denied(path, *args, **kwargs):
            if os.fspath(path) == os.fspath(locked):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    rejected = _refused(locked)
    assert rejected.reason is Reason.IMAGE_MISSING and "EACCES" in rejected.detail
