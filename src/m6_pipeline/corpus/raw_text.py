"""Reading user and embedded text sources: `data/01_raw/text/**/*.jsonl`.

Files are cut into byte ranges at line boundaries (so Ray tasks stream them in parallel and
no worker holds a whole file), and every line becomes exactly one record: parsed, or a
quarantine row that says why not (bad UTF-8, unparseable JSON, no text).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pyarrow as pa

from m6_pipeline.corpus.config import RawLimits
from m6_pipeline.corpus.raw_files import RefusedFile, list_raw_files, open_regular
from m6_pipeline.corpus.reasons import Reason, RecordRejected

RECORD_SCHEMA = pa.schema([
    ("id", pa.large_string()),
    ("source", pa.large_string()),
    ("title", pa.large_string()),
    ("text", pa.large_string()),
    ("order", pa.int64()),  # corpus order: file index << 32 | line number; dedup keeps the lowest
    ("reason", pa.large_string()),
    ("detail", pa.large_string()),
])


@dataclass(frozen=True)
class FileChunk:
    path: str
    relative: str  # path relative to the raw directory, used in ids
    source: str
    file_index: int
    start: int  # byte offset of the first line
    end: int  # byte offset after the last line
    first_line: int  # 1-based line number of the first line
    reason: str | None = None  # a refused file (raw_files): one quarantine row, nothing read
    detail: str | None = None


def source_of(relative: Path) -> str:
    """`text/reviews/x.jsonl` -> "reviews"; a file directly under `text/` is its own source."""
    parts = relative.parts
    return parts[1] if len(parts) > 2 else relative.stem


def chunk_location(chunk: FileChunk) -> str:
    """Where a chunk is, for an error message: file, bytes and first line."""
    return f"{chunk.relative} (bytes {chunk.start}-{chunk.end}, from line {chunk.first_line})"


def _next_line_start(f, position: int, size: int, block: int = 1 << 16) -> int:
    """The offset after the first newline at or after `position` (or `size`), found block by
    block: a line of any length costs one block of memory."""
    f.seek(position)
    while position < size:
        data = f.read(min(block, size - position))
        if not data:
            return size
        newline = data.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(data)
    return size


def _count_newlines(f, start: int, end: int, block: int = 1 << 20) -> int:
    f.seek(start)
    count, position = 0, start
    while position < end:
        data = f.read(min(block, end - position))
        if not data:
            break
        count += data.count(b"\n")
        position += len(data)
    return count


def plan_chunks(raw_dir: Path, subdir: str = "text", chunk_bytes: int = 4 << 20) -> list[FileChunk]:
    """Byte ranges of every `*.jsonl` under raw_dir/subdir, cut at newlines, in sorted order,
    at most about `chunk_bytes` each (`balanced_parts` groups them into Ray tasks). A refused
    file (not regular, outside raw, unreadable: see `raw_files`) is one empty chunk with its
    reason, so it becomes one quarantine row."""
    chunks: list[FileChunk] = []
    for index, raw in enumerate(list_raw_files(raw_dir, subdir, (".jsonl",))):
        relative = Path(raw.relative)
        refused = FileChunk(raw.path, raw.relative, source_of(relative), index, 0, 0, 0, raw.reason, raw.detail)
        if raw.reason is not None:
            chunks.append(refused)
            continue
        try:
            f, size = open_regular(raw.path)
        except RefusedFile as exc:
            chunks.append(replace(refused, reason=str(exc.reason), detail=f"{raw.relative}: {exc.detail}"))
            continue
        with f:
            # equal pieces within a file (a 27 MiB file in 16 MiB chunks is 13.5 + 13.5, not 16 + 11)
            piece = -(-size // max(1, -(-size // chunk_bytes)))
            start, line = 0, 1
            while start < size:
                end = _next_line_start(f, start + piece - 1, size) if start + piece < size else size
                chunks.append(FileChunk(raw.path, raw.relative, source_of(relative), index, start, end, line))
                start, line = end, line + _count_newlines(f, chunks[-1].start, end)
    return chunks


def balanced_parts(chunks: list[FileChunk], n_parts: int) -> list[list[FileChunk]]:
    """Contiguous runs of `chunks` (corpus order kept) with about equal bytes each.

    One Ray task per part: on a small machine, fewer and equal tasks beat many small ones
    (each task start costs ~0.2-0.3 s, and a lone last task leaves the other CPUs idle); the
    task still streams its part piece by piece, so its memory does not grow with the part.
    """
    if not chunks:
        return []
    total = sum(c.end - c.start for c in chunks)
    parts: list[list[FileChunk]] = [[]]
    done = 0
    for chunk in chunks:
        # start a new part once this one holds its share (by the cumulative byte count)
        if parts[-1] and len(parts) < n_parts and done >= total * len(parts) / n_parts:
            parts.append([])
        parts[-1].append(chunk)
        done += chunk.end - chunk.start
    return parts


def batch_rows(batch: dict) -> list[dict]:
    """A Ray Data numpy batch (column -> array) as plain-Python rows."""
    names = list(batch)
    n = len(batch[names[0]]) if names else 0
    return [{k: (batch[k][i].item() if hasattr(batch[k][i], "item") else batch[k][i]) for k in names}
            for i in range(n)]


_JSON_TYPES = {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number"}


def _field(obj: dict, name: str) -> str | None:
    """The string value of `name`, None when absent or null; any other JSON type is refused
    (a list of paragraphs turned into "['...', '...']" by str() is not text)."""
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    if name == "id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # numeric ids are common in crawls, and their decimal form is exact
    raise RecordRejected(Reason.FIELD_NOT_STRING,
                         f"'{name}' is {_JSON_TYPES.get(type(value), type(value).__name__)}, not a string")


def _lines(chunk: FileChunk, max_line_bytes: int) -> Iterator[bytes | int]:
    """The chunk's lines without their newline; a line over `max_line_bytes` is skipped unread
    and yielded as its length instead."""
    f, _ = open_regular(chunk.path)
    with f:
        f.seek(chunk.start)
        remaining = chunk.end - chunk.start
        while remaining > 0:
            line = f.readline(min(remaining, max_line_bytes + 1))
            if not line:
                break
            remaining -= len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                length = len(line)
                while remaining > 0 and not line.endswith(b"\n"):  # skip the rest, a block at a time
                    line = f.readline(min(remaining, 1 << 16))
                    if not line:
                        break
                    remaining -= len(line)
                    length += len(line)
                yield length - line.endswith(b"\n")
            else:
                yield line[:-1] if line.endswith(b"\n") else line


def _refusal(chunk: FileChunk, schema: pa.Schema) -> pa.Table:
    row = {name: [None] for name in schema.names}
    row.update(id=[chunk.relative], source=[chunk.source], order=[chunk.file_index << 32],
               reason=[chunk.reason], detail=[chunk.detail])
    return pa.Table.from_pydict(row, schema=schema)


@dataclass
class _Record:
    id: str
    source: str
    title: str | None = None
    text: str | None = None
    reason: Reason | None = None
    detail: str | None = None
    values: dict | None = None  # the `extra` fields


def _parse_line(raw: bytes, default_id: str, default_source: str, extra: tuple[str, ...]) -> _Record:
    """One JSON line as a record, or as the reason it is not one."""
    record = _Record(default_id, default_source)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as json_error:
        error: Exception = json_error
        record.reason = Reason.UNPARSEABLE_JSON
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as utf8_error:  # orjson says both; name the real cause
            error, record.reason = utf8_error, Reason.INVALID_UTF8
        record.detail = f"{error}; line starts {raw[:80].decode('utf-8', 'replace')!r}"
        return record
    if not isinstance(obj, dict):
        record.reason = Reason.RECORD_NOT_OBJECT
        record.detail = f"the line is {_JSON_TYPES.get(type(obj), 'a ' + type(obj).__name__)}, not a JSON object"
        return record
    try:
        record.id = _field(obj, "id") or default_id
    except RecordRejected as rejected:
        record.reason, record.detail = rejected.reason, rejected.detail
    try:
        record.source = _field(obj, "source") or default_source
        record.title = _field(obj, "title")
        record.text = _field(obj, "text")
        record.values = {name: _field(obj, name) for name in extra}
    except RecordRejected as rejected:
        record.reason, record.detail = record.reason or rejected.reason, record.detail or rejected.detail
    if record.reason is None and (not record.text or not record.text.strip()):
        record.reason, record.detail = Reason.MISSING_TEXT, "no non-empty 'text' field"
    return record


def parse_chunk(chunk: FileChunk, extra: tuple[str, ...] = (),
                max_line_bytes: int = RawLimits().max_line_bytes) -> pa.Table:
    """One record per line of the chunk (blank lines included: they are quarantined too); a
    refused file is one record with its reason, id = its path under raw.

    `extra` names further string fields to keep as columns (e.g. `image` for pairs).
    """
    schema = RECORD_SCHEMA
    for name in extra:
        schema = schema.append(pa.field(name, pa.large_string()))
    if chunk.reason is not None:
        return _refusal(chunk, schema)
    cols: dict[str, list] = {name: [] for name in schema.names}
    try:
        lines = list(_lines(chunk, max_line_bytes))
    except RefusedFile as exc:  # swapped for a FIFO or a link, or unreadable, since planning
        return _refusal(replace(chunk, reason=str(exc.reason), detail=f"{chunk.relative}: {exc.detail}"), schema)
    for offset, raw in enumerate(lines):
        line_no = chunk.first_line + offset
        default_id = f"{chunk.relative}:{line_no}"
        if isinstance(raw, int):
            record = _Record(default_id, chunk.source, reason=Reason.RECORD_TOO_LARGE,
                             detail=f"line of {raw} bytes > raw_limits.max_line_bytes {max_line_bytes}; not parsed")
        else:
            record = _parse_line(raw.rstrip(b"\r"), default_id, chunk.source, extra)
        cols["id"].append(record.id)
        cols["source"].append(record.source)
        cols["title"].append(record.title)
        cols["text"].append(record.text)
        cols["order"].append((chunk.file_index << 32) | line_no)
        cols["reason"].append(None if record.reason is None else str(record.reason))
        cols["detail"].append(record.detail)
        values = record.values or {}
        for name in extra:
            cols[name].append(values.get(name))
    return pa.Table.from_pydict(cols, schema=schema)
