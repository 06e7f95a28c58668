"""Safe decoding of untrusted image bytes and normalisation to upright 8-bit RGB.

The raw corpus is crawled data, so every image is hostile until decoded: the checks run in
order of cost, and the pixel count is read from the header *before* any pixel is decoded, so a
decompression bomb (a tiny file declaring 10^10 pixels) is rejected without allocating.

Order of checks (the first that fails names the Reason):
    empty file -> file bytes > max_file_bytes -> header unreadable -> declared pixels >
    max_pixels (or PIL's own bomb guard) -> declared pixels < min_pixels (§2.3: at least 5000)
    -> pixel data truncated/corrupt on `.load()` -> colour mode without an RGB conversion.

Normalisation: EXIF orientation applied; 1/L/I;16/I/F scaled to 8-bit grey (16-bit data is
scaled by 255/65535, never clipped); P with transparency, LA, RGBA, PA go through RGBA and are
composited onto white (product photos are shown on white; black would invent dark borders);
CMYK/YCbCr/HSV converted by PIL; animated images keep their first frame. Metadata (ICC, EXIF)
is dropped: the pixels are re-encoded as plain sRGB-assumed RGB.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps

from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.reasons import Reason, RecordRejected

_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_TRUNCATION_WORDS = ("truncat", "broken data stream", "unexpected end", "premature end")
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}, "PNG": {"compress_level": 6}}


class RejectedImage(RecordRejected):
    """Image bytes that are not kept; `reason` is a Reason, `detail` says what was found."""


def decode_image(data: bytes, rules: ImageRules) -> Image.Image:
    """Decode `data` (a whole image file) into a loaded, upright, 8-bit RGB image.

    Raises RejectedImage with IMAGE_EMPTY_FILE, IMAGE_TOO_LARGE_FILE, IMAGE_NOT_DECODABLE,
    IMAGE_DECOMPRESSION_BOMB, IMAGE_TOO_SMALL or IMAGE_TRUNCATED. Never changes PIL's globals
    (MAX_IMAGE_PIXELS, LOAD_TRUNCATED_IMAGES).
    """
    if not data:
        raise RejectedImage(Reason.IMAGE_EMPTY_FILE, "zero-byte file")
    if len(data) > rules.max_file_bytes:
        raise RejectedImage(Reason.IMAGE_TOO_LARGE_FILE,
                            f"{len(data)} bytes > max_file_bytes {rules.max_file_bytes} "
                            "(raise image_rules.max_file_bytes to keep such files)")
    with warnings.catch_warnings():
        # PIL only warns between MAX_IMAGE_PIXELS and twice that; a warning is a bomb here too
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open_header(data)
        width, height = img.size
        pixels = width * height
        if pixels > rules.max_pixels:
            raise RejectedImage(Reason.IMAGE_DECOMPRESSION_BOMB,
                                f"header declares {width}x{height} = {pixels} pixels > max_pixels "
                                f"{rules.max_pixels}; not decoded")
        if pixels < rules.min_pixels:
            raise RejectedImage(Reason.IMAGE_TOO_SMALL,
                                f"{width}x{height} = {pixels} pixels < min_pixels {rules.min_pixels}")
        _load_pixels(img)
    return normalise_to_rgb(img)


def _open_header(data: bytes) -> Image.Image:
    """Image.open reads only the header; the pixel data is decoded later by `.load()`."""
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RejectedImage(Reason.IMAGE_DECOMPRESSION_BOMB, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - PIL's plugins report malformed headers with many types
        raise _decoder_failure(exc, "header") from None


def _load_pixels(img: Image.Image) -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone else flipped PIL's global: refuse to guess
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; the "
                           "corpus must reject truncated images: find and remove the code that sets it")
    try:
        img.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RejectedImage(Reason.IMAGE_DECOMPRESSION_BOMB, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - corrupt pixels surface as OSError, ValueError, ...
        raise _decoder_failure(exc, "pixel data") from None


def _decoder_failure(exc: Exception, stage: str) -> RejectedImage:
    message = f"{type(exc).__name__}: {exc}"
    truncated = isinstance(exc, EOFError) or any(w in message.lower() for w in _TRUNCATION_WORDS)
    if truncated:
        return RejectedImage(Reason.IMAGE_TRUNCATED, f"{stage} ends early ({message})")
    return RejectedImage(Reason.IMAGE_NOT_DECODABLE, f"{stage} not decodable ({message})")


def normalise_to_rgb(img: Image.Image) -> Image.Image:
    """A loaded image of any PIL mode -> a new upright 8-bit RGB image with no metadata."""
    img = _upright(img)
    if img.mode in _HIGH_BIT_GREY:
        img = _to_8bit_grey(img)
    elif img.mode == "1":
        img = img.convert("L")
    if _has_alpha(img):
        img = _composite_on_white(img)
    try:
        out = img.convert("RGB")  # RGB -> RGB is a copy: detaches from the file buffer
    except ValueError as exc:  # e.g. LAB: PIL has no conversion without a colour profile
        raise RejectedImage(Reason.IMAGE_NOT_DECODABLE,
                            f"colour mode {img.mode} has no RGB conversion ({exc})") from None
    out.info = {}
    return out


def _upright(img: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - malformed EXIF: keep the pixels as stored, not lose them
        return img


def _has_alpha(img: Image.Image) -> bool:
    if img.mode in _ALPHA_MODES:
        return True
    if img.mode == "P":
        return "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")
    return img.mode in ("L", "RGB") and "transparency" in img.info


def _composite_on_white(img: Image.Image) -> Image.Image:
    if img.mode == "La":  # premultiplied grey has no direct RGBA conversion
        img = img.convert("LA")
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    white.alpha_composite(rgba)
    return white


def _to_8bit_grey(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit L, scaled (never clipped).

    I;16*: v * 255 / 65535. I: values already in 0..255 kept, in 0..65535 scaled as 16-bit,
    otherwise stretched min..max. F: 0..1 scaled by 255, 0..255 kept, otherwise stretched.
    """
    values = np.asarray(img).astype(np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        scaled = values * (255.0 / 65535.0)
    elif lo >= 0 and hi <= (1.0 if img.mode == "F" else 255.0):
        scaled = values * (255.0 if img.mode == "F" else 1.0)
    elif img.mode == "F" and lo >= 0 and hi <= 255.0:
        scaled = values
    elif img.mode == "I" and lo >= 0 and hi <= 65535.0:
        scaled = values * (255.0 / 65535.0)
    else:
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # 2-D uint8: L


def encode_image(img: Image.Image, fmt: str = "PNG") -> bytes:
    """The bytes of `img` saved as `fmt` (a PIL format name: PNG, JPEG, WEBP, ...)."""
    name = fmt.upper()
    if name == "JPG":
        name = "JPEG"
    if name not in Image.registered_extensions().values():
        raise ValueError(f"image_rules.output_format {fmt!r} is not a PIL format; use PNG, JPEG or WEBP")
    buf = io.BytesIO()
    img.save(buf, format=name, **_SAVE_OPTIONS.get(name, {}))
    return buf.getvalue()
