"""Raw folders like real crawls: non-regular files under data-file names, symlinks that leave the
raw directory, records whose fields are not strings, lines over the size cap, reused ids, and a
rule that fails unexpectedly. Every one ends as a quarantine row with its reason, or (the last)
stops the run naming the file; nothing outside the raw directory is read."""

from __future__ import annotations

import json
import os
import threading

import pyarrow as pa
import pytest

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.raw_files import list_raw_files
from m6_pipeline.corpus.raw_text import parse_chunk, plan_chunks
from m6_pipeline.corpus.reasons import CorpusInputError, Reason
from m6_pipeline.corpus.text_pipeline import annotate_parts

TEXT = "这家店的服务非常好，菜的味道也很不错，下次还会再来。"
SECRET = "outside-the-raw-directory-秘密"


def line(**fields) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def parse_all(raw, subdir="text", **kwargs) -> list[dict]:
    """Plan and parse as the corpus stage does, each chunk in a thread with a timeout, so a read
    that would block (a FIFO) fails the test instead of hanging it."""
    rows: list[dict] = []

    def work():
        for chunk in plan_chunks(raw, subdir=subdir, chunk_bytes=kwargs.pop("chunk_bytes", 4 << 20)):
            rows.extend(parse_chunk(chunk, **kwargs).to_pylist())

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "reading the raw folder blocked"
    return rows


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    (root / "text" / "forum").mkdir(parents=True)
    (tmp_path / "outside.jsonl").write_bytes(line(text=SECRET * 3) + b"\n")
    return root


def by_id(rows):
    return {r["id"]: r for r in rows}


def test_non_regular_files_are_refused_with_a_reason_and_never_read(raw, tmp_path):
    forum = raw / "text" / "forum"
    (forum / "good.jsonl").write_bytes(line(id="good", text=TEXT) + b"\n")
    os.mkfifo(forum / "pipe.jsonl")
    (forum / "folder.jsonl").mkdir()  # a directory with a data file's name is walked, not read
    (forum / "folder.jsonl" / "inner.jsonl").write_bytes(line(id="inner", text=TEXT) + b"\n")
    os.symlink("/dev/zero", forum / "zero.jsonl")
    os.symlink(tmp_path / "outside.jsonl", forum / "leak.jsonl")
    os.symlink(forum / "nowhere.jsonl", forum / "dangling.jsonl")
    os.symlink(forum / "good.jsonl", forum / "alias.jsonl")  # inside raw: read under its own name
    os.symlink(tmp_path, raw / "text" / "linked_dir")

    rows = parse_all(raw)
    got = by_id(rows)
    assert got["good"]["reason"] is None and got["inner"]["reason"] is None
    assert got["text/forum/pipe.jsonl"]["reason"] == Reason.NOT_A_REGULAR_FILE
    assert "FIFO" in got["text/forum/pipe.jsonl"]["detail"]
    assert got["text/forum/zero.jsonl"]["reason"] == Reason.FILE_OUTSIDE_RAW
    assert got["text/forum/leak.jsonl"]["reason"] == Reason.FILE_OUTSIDE_RAW
    assert got["text/forum/dangling.jsonl"]["reason"] == Reason.NOT_A_REGULAR_FILE
    assert got["text/linked_dir"]["reason"] == Reason.NOT_A_REGULAR_FILE
    alias = [r for r in rows if r["order"] >> 32 == _file_index(raw, "text/forum/alias.jsonl")]
    assert [r["reason"] for r in alias] == [None] and alias[0]["text"] == TEXT
    # nothing from outside the raw directory reached a record, its detail or its text
    assert not any(SECRET in (r["text"] or "") + (r["detail"] or "") for r in rows)
    # one row per refused file, each with its own order
    assert len({r["order"] for r in rows}) == len(rows)


def _file_index(raw, relative: str) -> int:
    return [f.relative for f in list_raw_files(raw, "text", (".jsonl",))].index(relative)


def test_a_file_swapped_or_removed_after_planning_is_refused_not_blocking(raw):
    forum = raw / "text" / "forum"
    (forum / "a.jsonl").write_bytes(line(text=TEXT) + b"\n")
    (forum / "b.jsonl").write_bytes(line(text=TEXT) + b"\n")
    chunks = plan_chunks(raw)
    (forum / "a.jsonl").unlink()
    os.mkfifo(forum / "a.jsonl")
    (forum / "b.jsonl").unlink()
    result: list = []
    worker = threading.Thread(target=lambda: result.extend(parse_chunk(c).to_pylist() for c in chunks), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "a FIFO swapped in after planning blocked the read"
    (a,), (b,) = result
    assert a["reason"] == Reason.NOT_A_REGULAR_FILE and a["id"] == "text/forum/a.jsonl"
    assert b["reason"] == Reason.FILE_UNREADABLE and "ENOENT" in b["detail"]


@pytest.mark.parametrize(("record", "reason"), [
    (b'{"text": ["\xe7\xac\xac\xe4\xb8\x80\xe6\xae\xb5", "second"]}', Reason.FIELD_NOT_STRING),
    (b'{"text": {"body": "x"}}', Reason.FIELD_NOT_STRING),
    (b'{"text": true}', Reason.FIELD_NOT_STRING),
    (b'{"text": 12345678901234567890}', Reason.FIELD_NOT_STRING),
    (b'{"text": "' + TEXT.encode() + b'", "title": ["a", "b"]}', Reason.FIELD_NOT_STRING),
    (b'{"text": "' + TEXT.encode() + b'", "source": 7}', Reason.FIELD_NOT_STRING),
    (b'{"text": "' + TEXT.encode() + b'", "id": true}', Reason.FIELD_NOT_STRING),
    (b'{"text": "' + TEXT.encode() + b'", "id": {"a": 1}}', Reason.FIELD_NOT_STRING),
    (b'["' + TEXT.encode() + b'"]', Reason.RECORD_NOT_OBJECT),
    (b'"' + TEXT.encode() + b'"', Reason.RECORD_NOT_OBJECT),
    (b"42", Reason.RECORD_NOT_OBJECT),
    (b"null", Reason.RECORD_NOT_OBJECT),
])
def test_fields_of_other_json_types_are_quarantined_never_stringified(raw, record, reason):
    (raw / "text" / "forum" / "a.jsonl").write_bytes(record + b"\n" + line(text=TEXT) + b"\n")
    bad, good = parse_all(raw)
    assert bad["reason"] == reason and bad["detail"]
    assert bad["text"] is None or bad["text"] == TEXT  # never str() of a list or an object
    assert good["reason"] is None


def test_a_numeric_id_is_kept_exactly(raw):
    (raw / "text" / "forum" / "a.jsonl").write_bytes(line(id=9007199254740993, text=TEXT) + b"\n")
    (row,) = parse_all(raw)
    assert row["id"] == "9007199254740993" and row["reason"] is None


def test_a_line_over_the_cap_is_quarantined_unread_and_its_neighbours_keep_their_numbers(raw):
    huge = line(text="长" * 5000)
    (raw / "text" / "forum" / "a.jsonl").write_bytes(
        line(id="before", text=TEXT) + b"\n" + huge + b"\n" + line(id="after", text=TEXT) + b"\n" + huge)
    rows = parse_all(raw, max_line_bytes=1000, chunk_bytes=600)
    assert [r["id"] for r in rows] == ["before", "text/forum/a.jsonl:2", "after", "text/forum/a.jsonl:4"]
    assert [r["reason"] for r in rows] == [None, Reason.RECORD_TOO_LARGE, None, Reason.RECORD_TOO_LARGE]
    assert str(len(huge)) in rows[1]["detail"] and rows[1]["text"] is None


def test_an_unexpected_failure_stops_the_run_naming_the_file(raw, monkeypatch, lexicon_path):
    forum = raw / "text" / "forum"
    (forum / "a.jsonl").write_bytes(line(text=TEXT) + b"\n")
    (forum / "b.jsonl").write_bytes(line(text=TEXT) + b"\n")
    cfg = CorpusConfig(raw_dir=raw, text_rules={"lexicon_path": str(lexicon_path)},
                       perplexity={"enabled": False})
    from m6_pipeline.corpus import text_annotate

    real = text_annotate.TextAnnotator.__call__

    def fails_on_b(self, batch: pa.Table):
        if any(i.startswith("text/forum/b.jsonl") for i in batch.column("id").to_pylist()):
            raise ZeroDivisionError("a rule's defect")
        return real(self, batch)

    monkeypatch.setattr(text_annotate.TextAnnotator, "__call__", fails_on_b)
    chunks = plan_chunks(raw)
    out = annotate_parts({"part": [0]}, [chunks], cfg, [], None)
    assert next(out).num_rows == 1  # a.jsonl
    with pytest.raises(CorpusInputError, match=r"text/forum/b\.jsonl .*ZeroDivisionError: a rule's defect"):
        next(out)
