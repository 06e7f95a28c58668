"""Listing and opening raw data files: only regular files inside the raw directory are read.

A crawl dropped into `data/01_raw` may hold anything under a data file's name: a directory
called `x.jsonl`, a FIFO (a read would block forever), a symlink to `/dev/zero` (endless) or to a
file outside the raw directory (whose content must not reach the corpus, nor the quarantine's
`detail`). So every entry is looked at with `lstat` before anything is opened:

- a regular file is listed;
- a symlink is resolved: a target outside the raw directory is refused (FILE_OUTSIDE_RAW) and
  never opened; a target inside that is a regular file is listed under the link's name;
- a FIFO, socket, device, a symlink to one, a dangling symlink, or a symlink to a directory
  (directories are walked, symlinked ones are not followed) is refused (NOT_A_REGULAR_FILE).

A refusal is a `RawFile` with a reason and detail, so the caller writes one quarantine row for
it: nothing under the raw directory is skipped silently. Opening goes through `open_regular`,
which checks again on the open descriptor (`O_NOFOLLOW | O_NONBLOCK`, then `fstat`): a file
swapped for a FIFO or a link after listing is refused, never blocks.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from m6_pipeline.corpus.reasons import Reason, RecordRejected


class RefusedFile(RecordRejected):
    """A raw file that is not read; `reason` says why."""


@dataclass(frozen=True)
class RawFile:
    """One data file under the raw directory, in sorted order.

    path: what to open (the resolved target for a symlink); relative: the name under raw, as
    listed (ids and sources use it); reason/detail: set when the file is refused unread.
    """

    path: str
    relative: str
    reason: str | None = None
    detail: str | None = None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _admit(path: str, relative: str, root: str) -> RawFile:
    """The listing entry of one path that matched a data-file pattern."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return RawFile(path, relative, str(Reason.FILE_UNREADABLE), f"{relative}: {errno_text(exc)}")
    if stat.S_ISREG(st.st_mode):
        return RawFile(path, relative)
    if not stat.S_ISLNK(st.st_mode):
        return RawFile(path, relative, str(Reason.NOT_A_REGULAR_FILE), f"{relative} is {_kind(st.st_mode)}")
    target = os.path.realpath(path)
    if not _inside(target, root):
        return RawFile(path, relative, str(Reason.FILE_OUTSIDE_RAW),
                       f"{relative} is a symlink to a path outside the raw directory; not read "
                       "(copy the file under the raw directory)")
    try:
        st = os.stat(target)
    except OSError as exc:
        return RawFile(path, relative, str(Reason.NOT_A_REGULAR_FILE),
                       f"{relative} is a dangling symlink ({errno_text(exc)})")
    if not stat.S_ISREG(st.st_mode):
        return RawFile(path, relative, str(Reason.NOT_A_REGULAR_FILE),
                       f"{relative} is a symlink to {_kind(st.st_mode)}")
    return RawFile(target, relative)


def list_raw_files(raw_dir: Path, subdir: str, suffixes: tuple[str, ...]) -> list[RawFile]:
    """Every entry under raw_dir/subdir whose name ends with one of `suffixes` (case-insensitive),
    plus every symlinked directory (not followed), sorted by relative path. See the module
    docstring for what is refused."""
    root = os.path.realpath(raw_dir)
    top = os.path.join(root, subdir)
    found: list[RawFile] = []
    if not os.path.isdir(top):
        return found
    for directory, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        for name in dirnames:
            full = os.path.join(directory, name)
            if os.path.islink(full):  # os.walk lists a symlinked directory here and does not enter it
                relative = Path(os.path.relpath(full, root)).as_posix()
                found.append(RawFile(full, relative, str(Reason.NOT_A_REGULAR_FILE),
                                     f"{relative} is a symlink to a directory; not followed (move the "
                                     "directory under the raw directory)"))
        for name in filenames:
            if name.lower().endswith(suffixes):
                full = os.path.join(directory, name)
                found.append(_admit(full, Path(os.path.relpath(full, root)).as_posix(), root))
    return sorted(found, key=lambda f: f.relative)


def open_regular(path: str | Path) -> tuple[BinaryIO, int]:
    """Open a listed file for reading, refusing anything that is not (or no longer) a regular
    file without reading it and without blocking. Returns the file and its size as `fstat` saw
    it on the open descriptor (the caller checks it against its own cap before reading)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise RefusedFile(Reason.FILE_UNREADABLE, f"{Path(path).name}: {_open_failure(exc)}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RefusedFile(Reason.NOT_A_REGULAR_FILE, f"{Path(path).name} is {_kind(st.st_mode)}")
    return os.fdopen(fd, "rb"), st.st_size


class FileTooLarge(Exception):
    """A file over the caller's cap: `size` bytes (as `fstat` saw them, or as read when the file
    grew after its size was checked)."""

    def __init__(self, size: int, grew: bool):
        super().__init__(f"{size} bytes")
        self.size = size
        self.grew = grew


def read_capped(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a listed file, read only when its size is at most `max_bytes` (at most
    max_bytes + 1 are read, so a file that grew after the stat is caught too). Raises
    `RefusedFile` (not a regular file, cannot be opened or read) or `FileTooLarge`."""
    f, size = open_regular(path)
    with f:
        if size > max_bytes:
            raise FileTooLarge(size, grew=False)
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:  # EIO and the like while reading
            raise RefusedFile(Reason.FILE_UNREADABLE, f"read failed ({errno_text(exc)})") from None
    if len(data) > max_bytes:
        raise FileTooLarge(len(data), grew=True)
    return data


def errno_text(exc: OSError) -> str:
    """`ENOENT: No such file or directory`: the errno's name and its message."""
    return f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror or exc}"


def _open_failure(exc: OSError) -> str:
    hint = {errno.ELOOP: " (a symbolic link where a file was listed; put the file itself under the raw directory)",
            errno.ENOENT: " (removed since it was listed, or never there)",
            errno.EACCES: " (make the file readable by the pipeline's user)"}.get(exc.errno or 0, "")
    return errno_text(exc) + hint
