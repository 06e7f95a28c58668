"""Resolve an image reference (a jsonl `image` field or an HTML `src`) to a file inside raw.

A reference is treated as a URL reference (RFC 3986): `?query` and `#fragment` are stripped,
`%xx` escapes decoded, backslashes read as slashes (as browsers do). Only plain relative paths
that stay inside the raw directory are accepted:

- any scheme (`http:`, `https:`, `ftp:`, `data:`, ...) or a protocol-relative `//host/...` is a
  remote reference: it is never fetched (the corpus is built offline from `data/01_raw`);
- an absolute path, a `..` that climbs out of the raw directory, or a symlink anywhere on the
  way whose target lies outside it is refused before anything is opened;
- a reference that resolves inside but names no regular file is missing.

The walk follows the path one component at a time as the kernel would, resolving each symlink
with `os.path.realpath` and checking containment after every step, so `link/../x` cannot use
a symlinked directory to step out. Only `lstat`/`realpath` touch the filesystem here.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import unquote

from m6_pipeline.corpus.reasons import Reason, RecordRejected

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")  # C:/x, C:x: a drive, never relative to raw


class RejectedReference(RecordRejected):
    """An image reference that yields no readable file inside raw; `reason` says why."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _local_path(ref: str) -> str:
    """The decoded path part of a reference, or RejectedReference for a non-local one."""
    text = ref.strip().replace("\\", "/")
    if not text:
        raise RejectedReference(Reason.IMAGE_MISSING, "empty image reference")
    if text.startswith("//"):
        raise RejectedReference(Reason.REMOTE_URL_NOT_FETCHED,
                                f"{ref!r} is protocol-relative (remote); remote images are not "
                                "fetched: copy the file under the raw directory and refer to it "
                                "by a relative path")
    if _WINDOWS_DRIVE.match(text):
        raise RejectedReference(Reason.PATH_OUTSIDE_RAW,
                                f"{ref!r} is an absolute path; use a path relative to the referring file")
    scheme = _SCHEME.match(text)
    if scheme:
        name = scheme.group(1).lower()
        if name == "file":  # a local absolute path spelled as a URL
            raise RejectedReference(Reason.PATH_OUTSIDE_RAW,
                                    f"{ref!r} is an absolute file: URL; use a relative path")
        raise RejectedReference(Reason.REMOTE_URL_NOT_FETCHED,
                                f"{ref!r} has scheme '{name}:'; remote images are not fetched: copy "
                                "the file under the raw directory and refer to it by a relative path "
                                "(write './a:b.png' for a file whose name contains ':')")
    text = re.split(r"[?#]", text, maxsplit=1)[0]
    decoded = _percent_decode(text)
    if "\x00" in decoded:
        raise RejectedReference(Reason.IMAGE_MISSING, f"{ref!r} decodes to a name with a NUL byte")
    decoded = decoded.replace("\\", "/")  # %5C is a separator too, as in browsers
    if decoded.startswith("/") or _WINDOWS_DRIVE.match(decoded):
        raise RejectedReference(Reason.PATH_OUTSIDE_RAW,
                                f"{ref!r} is an absolute path; use a path relative to the referring file")
    if not decoded.strip("/."):
        raise RejectedReference(Reason.IMAGE_MISSING, f"{ref!r} names a directory, not a file")
    return decoded


def _percent_decode(text: str) -> str:
    """%xx escapes as UTF-8, else as GB18030 (older Chinese sites escape GBK bytes)."""
    if "%" not in text:
        return text
    for encoding in ("utf-8", "gb18030"):
        try:
            return unquote(text, encoding=encoding, errors="strict")
        except UnicodeDecodeError:
            continue
    raise UnicodeDecodeError("utf-8", text.encode(), 0, len(text), "undecodable %-escapes")


def resolve_image_reference(ref: str, referrer_dir: Path, raw_root: Path) -> Path:
    """The real path of the image file `ref` names, relative to `referrer_dir`.

    `referrer_dir` is the directory of the jsonl/html file holding the reference; `raw_root` is
    the raw data directory every image must live in. Returns an absolute path with no symlink in
    it. Raises RejectedReference(REMOTE_URL_NOT_FETCHED | PATH_OUTSIDE_RAW | IMAGE_MISSING).
    """
    try:
        relative = _local_path(ref)
    except UnicodeDecodeError:
        raise RejectedReference(Reason.IMAGE_MISSING,
                                f"{ref!r}: %-escapes decode neither as UTF-8 nor GB18030") from None
    root = os.path.realpath(raw_root)
    current = os.path.realpath(referrer_dir)
    if not _inside(current, root):
        raise RejectedReference(Reason.PATH_OUTSIDE_RAW,
                                f"referring directory {referrer_dir} is outside the raw directory {root}")
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        step = os.path.dirname(current) if part == ".." else os.path.join(current, part)
        try:
            is_link = stat.S_ISLNK(os.lstat(step).st_mode)
        except FileNotFoundError:
            is_link = False
        except (OSError, ValueError) as exc:  # ENOTDIR, ENAMETOOLONG, EACCES: no file to read
            raise RejectedReference(Reason.IMAGE_MISSING, f"{ref!r}: {exc}") from None
        if is_link:
            step = os.path.realpath(step)
        if not _inside(step, root):
            how = "a symlink pointing" if is_link else "'..' climbing"
            raise RejectedReference(Reason.PATH_OUTSIDE_RAW,
                                    f"{ref!r} passes through {how} outside the raw directory {root}; "
                                    "copy the image under the raw directory")
        current = step
    try:
        mode = os.stat(current).st_mode  # follows nothing now: every link was resolved above
    except (OSError, ValueError):
        raise RejectedReference(Reason.IMAGE_MISSING,
                                f"{ref!r}: no file at {current} (referred from {referrer_dir})") from None
    if not stat.S_ISREG(mode):
        raise RejectedReference(Reason.IMAGE_MISSING, f"{ref!r}: {current} is not a regular file")
    return Path(current)
