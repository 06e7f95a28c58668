"""Reading user and embedded text sources: `data/01_raw/text/**/*.jsonl`.

Files are cut into byte ranges at line boundaries (so Ray tasks stream them in parallel and
no worker holds a whole file), and every line becomes exactly one record: parsed, or a
quarantine row that says why not (bad UTF-8, unparseable JSON, no text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa

from m6_pipeline.corpus.reasons import Reason

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


def source_of(relative: Path) -> str:
    """`text/reviews/x.jsonl` -> "reviews"; a file directly under `text/` is its own source."""
    parts = relative.parts
    return parts[1] if len(parts) > 2 else relative.stem


def plan_chunks(raw_dir: Path, subdir: str = "text", chunk_bytes: int = 4 << 20) -> list[FileChunk]:
    """Byte ranges of every `*.jsonl` under raw_dir/subdir, cut at newlines, in sorted order,
    at most about `chunk_bytes` each (`balanced_parts` groups them into Ray tasks)."""
    raw_dir = Path(raw_dir)
    files = sorted((raw_dir / subdir).rglob("*.jsonl"))
    chunks: list[FileChunk] = []
    for index, path in enumerate(files):
        relative = path.relative_to(raw_dir)
        size = path.stat().st_size
        # equal pieces within a file (a 27 MiB file in 16 MiB chunks is 13.5 + 13.5, not 16 + 11)
        piece = -(-size // max(1, -(-size // chunk_bytes)))
        start, line = 0, 1
        with path.open("rb") as f:
            while start < size:
                f.seek(min(start + piece, size))
                f.readline()  # move to the end of the line the cut landed in
                end = min(f.tell(), size) if start + piece < size else size
                f.seek(start)
                lines_here = f.read(end - start).count(b"\n")
                chunks.append(FileChunk(str(path), relative.as_posix(), source_of(relative),
                                        index, start, end, line))
                start, line = end, line + lines_here
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


def _field(obj: dict, name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def parse_chunk(chunk: FileChunk, extra: tuple[str, ...] = ()) -> pa.Table:
    """One record per line of the chunk (blank lines included: they are quarantined too).

    `extra` names further string fields to keep as columns (e.g. `image` for pairs).
    """
    with open(chunk.path, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.end - chunk.start)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    schema = RECORD_SCHEMA
    for name in extra:
        schema = schema.append(pa.field(name, pa.large_string()))
    cols: dict[str, list] = {name: [] for name in schema.names}
    for offset, raw in enumerate(lines):
        line_no = chunk.first_line + offset
        default_id = f"{chunk.relative}:{line_no}"
        record_id, source, title, text, reason, detail = default_id, chunk.source, None, None, None, None
        values = dict.fromkeys(extra)
        raw = raw.rstrip(b"\r")
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise orjson.JSONDecodeError("not a JSON object", raw.decode("utf-8", "replace"), 0)
        except orjson.JSONDecodeError as json_error:
            error: Exception = json_error
            reason = Reason.UNPARSEABLE_JSON
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as utf8_error:  # orjson says both; name the real cause
                error, reason = utf8_error, Reason.INVALID_UTF8
            detail = f"{error}; line starts {raw[:80].decode('utf-8', 'replace')!r}"
        else:
            record_id = _field(obj, "id") or default_id
            source = _field(obj, "source") or chunk.source
            title = _field(obj, "title")
            text = _field(obj, "text")
            values = {name: _field(obj, name) for name in extra}
            if not text or not text.strip():
                reason, detail = Reason.MISSING_TEXT, "no non-empty 'text' field"
        cols["id"].append(record_id)
        cols["source"].append(source)
        cols["title"].append(title)
        cols["text"].append(text)
        cols["order"].append((chunk.file_index << 32) | line_no)
        cols["reason"].append(None if reason is None else str(reason))
        cols["detail"].append(detail)
        for name in extra:
            cols[name].append(values[name])
    return pa.Table.from_pydict(cols, schema=schema)
