"""Safe decoding of untrusted image bytes and normalisation to upright 8-bit RGB.

The raw corpus is crawled data, so every image is hostile until decoded: the checks run in
order of cost, and the pixel count is read from the header *before* any pixel is decoded, so a
decompression bomb (a tiny file declaring 10^10 pixels) is rejected without allocating.
`read_image_file` reads the file itself: a FIFO, directory or symlink is refused unread, and the
size cap is checked on the open descriptor before the first byte is read.

Order of checks (the first that fails names the Reason):
    empty file -> file bytes > max_file_bytes -> header unreadable -> declared pixels >
    max_pixels (or PIL's own bomb guard) -> declared pixels < min_pixels (§2.3: at least 5000)
    -> pixel data truncated/corrupt on `.load()` -> colour mode without an RGB conversion.

Normalisation: EXIF orientation applied; P with transparency, LA, La, RGBA, RGBa, PA, and
L/RGB/16-bit grey with a tRNS colour are composited onto white (product photos are shown on
white; black would invent dark borders); CMYK, YCbCr, LAB, HSV, RGBX converted by PIL;
animated images keep their first frame. Metadata (ICC, EXIF) is dropped: the pixels are
re-encoded as plain sRGB-assumed RGB.

High-bit grey (modes I;16*, I, F) is mapped linearly onto 0..255, never clipped, never
stretched to its own min..max when the file says what its samples mean:
- Unsigned samples whose depth the file declares map their full range: v * 255 / (2^bits - 1).
  The depth comes from the decoder's raw mode, read from the header before the pixels are
  decoded: 16-bit PNG (opened as I;16), 16-bit TIFF (I;16, I;16B), 16-bit PGM (opened as I,
  scaled by PIL to 0..65535), 12-bit TIFF (0..4095). A dark 16-bit file stays dark: values
  0..4000 become 0..16 and values all <= 255 become 0..1 (that is what a viewer shows; the
  quality score then judges it), never re-read as 8-bit data.
- Containers that do not declare a display range (32-bit integer I, signed 16-bit I, 32-bit
  float F) take the smallest nominal range holding every value: 0..1 (F only), 0..255,
  0..65535; so the same numbers give the same grey in any container. Only data outside all
  three (negative, or above 65535) is stretched from its min..max. NaN and inf count as 0.
  Known limit: HDR floats just above 1.0 fall in the 0..255 range and come out dark.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.raw_files import FileTooLarge, RefusedFile, read_capped
from m6_pipeline.corpus.reasons import Reason, RecordRejected

_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# decoder raw mode of unsigned grey samples -> the top of the range the file declares
_DECLARED_GREY_TOP = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0,
                      "I;16R": 65535.0, "I;12": 4095.0}
_PPM_DECODERS = ("ppm", "ppm_plain")  # they rescale a PGM maxval > 255 to 0..65535 (mode I)
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
        grey_top = _declared_grey_top(img)  # before .load(), which forgets the raw mode
        _load_pixels(img)
    return normalise_to_rgb(img, grey_top)


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


def normalise_to_rgb(img: Image.Image, grey_top: float | None = None) -> Image.Image:
    """A loaded image of any PIL mode -> a new upright 8-bit RGB image with no metadata.

    grey_top: the largest sample value the file declares for unsigned high-bit grey (65535 for
    16-bit, 4095 for 12-bit; see the module docstring), as `decode_image` reads it before
    decoding; None: the mode's own (I;16*: 65535) or, for I and F, the nominal-range rule.
    """
    if grey_top is None:
        grey_top = _declared_grey_top(img)  # still known if `img` was not loaded yet
    img = _upright(img)
    if img.mode in _HIGH_BIT_GREY:
        img = _to_8bit_grey(img, grey_top)
    elif img.mode == "1":
        img = img.convert("L")
    if _has_alpha(img):
        img = _composite_on_white(img)
    try:
        out = img.convert("RGB")  # RGB -> RGB is a copy: detaches from the file buffer
    except ValueError as exc:  # a mode PIL cannot convert (none that PIL 13 decodes)
        raise RejectedImage(Reason.IMAGE_NOT_DECODABLE,
                            f"colour mode {img.mode} has no RGB conversion ({exc})") from None
    out.info = {}
    return out


def _declared_grey_top(img: Image.Image) -> float | None:
    """The top of the unsigned sample range the file declares for high-bit grey, or None.

    Read from the decoder's raw mode in `img.tile`, which `.load()` empties: a 16-bit PNG says
    "I;16B" whatever mode PIL opens it as, a 16-bit PGM opens as I with the raw mode "I;16B"
    (maxval 65535) or through PIL's PPM decoder (which rescales to 0..65535).
    """
    tiles = getattr(img, "tile", None)  # only files opened by PIL have tiles
    if img.mode not in _HIGH_BIT_GREY or not tiles:
        return None
    tile = tiles[0]
    if tile.codec_name in _PPM_DECODERS and img.mode == "I":
        return 65535.0
    rawmode = tile.args[0] if isinstance(tile.args, tuple) and tile.args else tile.args
    return _DECLARED_GREY_TOP.get(rawmode) if isinstance(rawmode, str) else None


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


def _to_8bit_grey(img: Image.Image, grey_top: float | None) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit L, mapped linearly onto 0..255 (never clipped).

    The range mapped is 0..grey_top when the file declares it, 0..65535 for I;16* otherwise,
    else the smallest of 0..1 (F only), 0..255, 0..65535 that holds every value, else the
    image's min..max (see the module docstring). A 16-bit tRNS grey value becomes white.
    """
    values = np.asarray(img).astype(np.float64)  # [height, width]
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if grey_top is None and img.mode.startswith("I;16"):
        grey_top = 65535.0
    lo, hi = (0.0, grey_top) if grey_top is not None else _nominal_range(values, img.mode == "F")
    scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, int) and not isinstance(transparent, bool):
        grey[np.asarray(img) == transparent] = 255  # composited onto white, as for 8-bit modes
    return Image.fromarray(grey)  # 2-D uint8: L


def _nominal_range(values: np.ndarray, is_float: bool) -> tuple[float, float]:
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if lo >= 0.0:
        for top in ((1.0,) if is_float else ()) + (255.0, 65535.0):
            if hi <= top:
                return 0.0, top
    return lo, hi


def read_image_file(path: Path, max_file_bytes: int) -> bytes:
    """The bytes of the image file at `path`, refused unread when it is not (or no longer) a
    regular file or is larger than `max_file_bytes` (`raw_files.read_capped`: a FIFO never
    blocks, a 10 GB file costs one fstat). Raises RejectedImage: IMAGE_MISSING (cannot be opened
    or read: the errno name; or not a regular file: its kind), IMAGE_TOO_LARGE_FILE."""
    try:
        return read_capped(path, max_file_bytes)
    except RefusedFile as refused:
        raise RejectedImage(Reason.IMAGE_MISSING, f"{refused.detail}; not read") from None
    except FileTooLarge as large:
        found = (f"grew past max_file_bytes {max_file_bytes} after its size was checked" if large.grew
                 else f"{large.size} bytes > max_file_bytes {max_file_bytes}; not read")
        raise RejectedImage(Reason.IMAGE_TOO_LARGE_FILE,
                            f"{found} (raise image_rules.max_file_bytes to keep such files)") from None


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
