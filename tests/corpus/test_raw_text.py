import json

from m6_pipeline.corpus.raw_text import parse_chunk, plan_chunks
from m6_pipeline.corpus.reasons import Reason


def write_lines(path, lines: list[bytes]):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")


def parse_all(raw):
    rows = []
    for chunk in plan_chunks(raw):
        rows.extend(parse_chunk(chunk).to_pylist())
    return rows


def test_every_line_becomes_one_record_with_a_reason_when_bad(tmp_path):
    good = json.dumps({"id": "keep-me", "text": "一条正常的评论内容，长度足够。", "title": "标题很长的"},
                      ensure_ascii=False).encode()
    lines = [
        good,
        json.dumps({"text": "没有编号的记录也有一个确定的编号。"}, ensure_ascii=False).encode(),
        b'{"text": "\xe4\xb8\xad\xff\xfe broken utf-8"}',
        b'{"text": "unterminated',
        b"",
        b"[1, 2, 3]",
        json.dumps({"id": "no-text", "title": "只有标题"}, ensure_ascii=False).encode(),
        json.dumps({"text": "   "}).encode(),
    ]
    write_lines(tmp_path / "text" / "forum" / "a.jsonl", lines)
    rows = parse_all(tmp_path)
    assert len(rows) == len(lines)
    assert rows[0]["id"] == "keep-me" and rows[0]["reason"] is None and rows[0]["source"] == "forum"
    assert rows[1]["id"] == "text/forum/a.jsonl:2" and rows[1]["reason"] is None
    assert [r["reason"] for r in rows[2:]] == [
        Reason.INVALID_UTF8, Reason.UNPARSEABLE_JSON, Reason.UNPARSEABLE_JSON,
        Reason.RECORD_NOT_OBJECT, Reason.MISSING_TEXT, Reason.MISSING_TEXT]
    assert all(r["detail"] for r in rows[2:])


def test_chunks_split_large_files_at_line_boundaries(tmp_path):
    lines = [json.dumps({"text": f"第{i}条记录的内容在这里，足够长。"}, ensure_ascii=False).encode()
             for i in range(5000)]
    write_lines(tmp_path / "text" / "big.jsonl", lines)
    chunks = plan_chunks(tmp_path, chunk_bytes=4096)
    assert len(chunks) > 10
    rows = [r for c in chunks for r in parse_chunk(c).to_pylist()]
    assert [r["id"] for r in rows] == [f"text/big.jsonl:{i + 1}" for i in range(5000)]
    assert all(r["source"] == "big" and r["reason"] is None for r in rows)
    assert len({r["order"] for r in rows}) == 5000


def test_record_source_field_wins_over_directory(tmp_path):
    write_lines(tmp_path / "text" / "x" / "a.jsonl",
                [json.dumps({"text": "内容", "source": "encyclopedia"}).encode()])
    assert parse_all(tmp_path)[0]["source"] == "encyclopedia"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from m6_pipeline.corpus.raw_text import FileChunk, balanced_parts  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(1, 5000), max_size=60), n_parts=st.integers(1, 8))
def test_balanced_parts_keep_every_chunk_in_order_and_share_the_bytes(sizes, n_parts):
    chunks, start = [], 0
    for i, size in enumerate(sizes):
        chunks.append(FileChunk("f", "text/f.jsonl", "f", 0, start, start + size, i + 1))
        start += size
    parts = balanced_parts(chunks, n_parts)
    assert [c for part in parts for c in part] == chunks  # contiguous, complete, in corpus order
    assert all(parts) and len(parts) <= n_parts
    if chunks:
        share, largest = sum(sizes) / n_parts, max(sizes)
        # a part overshoots its share by less than one chunk, so none holds more than that
        assert all(sum(c.end - c.start for c in part) < share + largest for part in parts)
        if len(chunks) >= n_parts and largest <= share / 2:
            assert len(parts) == n_parts
