"""An uploaded image is hostile until decoded: the corpus stage's safe decoder checks it (file
size, then the pixel count declared in the header before any pixel is decoded, then truncated
or undecodable data) and normalises it to upright 8-bit RGB."""

from __future__ import annotations

from m6_pipeline.corpus.config import ImageRules
from m6_pipeline.corpus.images import RejectedImage, decode_image, encode_image
from m6_pipeline.demos.config import UploadLimits


class UploadRejected(ValueError):
    """An upload that is not decoded; `reason` is the corpus Reason, the message says what was found."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def validate_upload(data: bytes, limits: UploadLimits) -> bytes:
    """The PNG bytes of the upright RGB image in `data`; raises UploadRejected with the reason."""
    rules = ImageRules(max_file_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                       min_pixels=limits.min_pixels)
    try:
        image = decode_image(data, rules)
    except RejectedImage as rejected:
        raise UploadRejected(str(rejected.reason), rejected.detail) from None
    return encode_image(image, "PNG")
