"""Why a record left the corpus. Every quarantine row carries exactly one of these.

The names are the contract of `data/03_primary/quarantine/*.parquet` (`reason` column) and of
`corpus_report.json` (`dropped` keys); add new ones here, never as ad-hoc strings.
"""

from enum import StrEnum


class Reason(StrEnum):
    # input parsing (any source)
    INVALID_UTF8 = "invalid_utf8"
    UNPARSEABLE_JSON = "unparseable_json"
    MISSING_TEXT = "missing_text"
    # text rules of §2.3 and the Data-Juicer-style quality rules
    TITLE_TOO_SHORT = "title_too_short"
    TEXT_TOO_SHORT = "text_too_short"
    CHARACTER_REPETITION = "character_repetition"
    SPECIAL_CHARACTERS = "special_characters"
    SPAM_LEXICON = "spam_lexicon"
    PERPLEXITY = "perplexity"
    EXACT_DUPLICATE = "exact_duplicate"
    DUPLICATE_ID = "duplicate_id"
    NEAR_DUPLICATE = "near_duplicate"
    # image references (pairs and webpages)
    REMOTE_URL_NOT_FETCHED = "remote_url_not_fetched"
    PATH_OUTSIDE_RAW = "path_outside_raw"
    IMAGE_MISSING = "image_missing"
    # image decoding and quality
    IMAGE_EMPTY_FILE = "image_empty_file"
    IMAGE_TOO_LARGE_FILE = "image_too_large_file"
    IMAGE_DECOMPRESSION_BOMB = "image_decompression_bomb"
    IMAGE_NOT_DECODABLE = "image_not_decodable"
    IMAGE_TRUNCATED = "image_truncated"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_LOW_QUALITY = "image_low_quality"
    IMAGE_CONTENT_REJECTED = "image_content_rejected"
    IMAGE_NEAR_DUPLICATE = "image_near_duplicate"
    # webpages
    PAGE_UNPARSEABLE = "page_unparseable"
    PAGE_WITHOUT_IMAGES = "page_without_images"
    NO_SURROUNDING_TEXT = "no_surrounding_text"


class RecordRejected(Exception):
    """A record that leaves the corpus: `reason` says why, `detail` what was found.

    Raised and caught per record inside the cleaning steps; never escapes a batch.
    """

    def __init__(self, reason: Reason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # picklable across Ray workers with both fields
        return (type(self), (self.reason, self.detail))
