"""Why a record left the corpus. Every quarantine row carries exactly one of these.

The names are the contract of `data/03_primary/quarantine/*.parquet` (`reason` column) and of
`corpus_report.json` (`dropped` keys); add new ones here, never as ad-hoc strings.
"""

from enum import StrEnum


class Reason(StrEnum):
    # raw files, refused before anything is read (any source)
    NOT_A_REGULAR_FILE = "not_a_regular_file"  # a FIFO, socket, device, symlinked directory
    FILE_OUTSIDE_RAW = "file_outside_raw"  # a symlink whose target leaves the raw directory
    FILE_UNREADABLE = "file_unreadable"  # permission denied, I/O error, vanished since listing
    # input parsing (any source)
    INVALID_UTF8 = "invalid_utf8"
    UNPARSEABLE_JSON = "unparseable_json"
    RECORD_NOT_OBJECT = "record_not_object"  # valid JSON, but not an object
    RECORD_TOO_LARGE = "record_too_large"  # a line over raw_limits.max_line_bytes (not read)
    FIELD_NOT_STRING = "field_not_string"  # text, title, source or image of another JSON type
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
    PAGE_TOO_LARGE = "page_too_large"  # over raw_limits.max_page_bytes (not read)
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


class CorpusInputError(RuntimeError):
    """An unexpected failure while cleaning one raw file: the run stops and names the file.

    The corpus's error policy: every foreseen kind of bad input is a quarantine row with its
    Reason (raised as `RecordRejected` and caught per record). Anything else is a defect in a
    rule or a library, not a property of the record: quarantining it under a catch-all reason
    would hide the defect and could drop every record of a file, so the cleaning task raises
    this instead, Ray Data fails the dataset (`max_errored_blocks` stays 0: no block is
    skipped), and the message says which file and which lines to look at.
    """

    def __init__(self, where: str, error: BaseException):
        super().__init__(f"cleaning {where} failed with {type(error).__name__}: {error}. The corpus run "
                         "stops rather than lose this file's records: fix or remove the file (or report the "
                         "bug with it), then re-run")
        self.where = where

    def __reduce__(self):  # picklable across Ray workers
        return (_rebuild_input_error, (self.where, str(self)))


def _rebuild_input_error(where: str, message: str) -> CorpusInputError:
    error = CorpusInputError.__new__(CorpusInputError)
    RuntimeError.__init__(error, message)
    error.where = where
    return error
