"""The corpus pipeline over a raw folder like a real crawl's, through Kedro's runner and Ray Data:
non-regular files under data-file names, symlinks that leave the raw directory, fields of other
JSON types, oversized lines and pages, reused ids, non-text charset labels, 16-bit images. The
run finishes, each bad record is quarantined with its reason, the report balances, and nothing
from outside the raw directory reaches any output."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pyarrow.dataset as pds
import pytest
from kedro.runner import SequentialRunner
from PIL import Image

from pipelines.corpus.pipeline import create_pipeline
from tests.pipelines.test_corpus_pipeline import catalog_for, small_params

SECRET = "外面的秘密内容不能进入语料库"
TEXT = "这是论坛里的一段正常讨论，大家都很认真地回答了问题。"
PAIR_TEXT = "一件蓝色条纹的衬衫，纯棉面料，适合春天穿着，白色背景的商品图片。"


def jsonl(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=False).encode()) + b"\n"
                    for r in records)


def grey16_png() -> bytes:
    """A textured 16-bit greyscale product photo."""
    y, x = np.mgrid[0:96, 0:96]
    values = (x * 500 + (y // 8 % 2) * 12000 + 3000).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(values).save(buf, "PNG")
    return buf.getvalue()


def write_hostile(raw, outside) -> None:
    forum, items, shop = raw / "text" / "forum", raw / "pairs" / "hostile", raw / "html" / "hostile"
    for folder in (forum, items / "img", shop):
        folder.mkdir(parents=True)
    outside.mkdir()
    (outside / "leak.jsonl").write_bytes(jsonl({"text": SECRET * 2}))
    (outside / "leak.html").write_text(f"<p>{SECRET}</p><img src='x.png' alt='{SECRET}'>", "utf-8")

    (forum / "a.jsonl").write_bytes(jsonl(
        {"id": "kept-1", "text": TEXT},
        {"id": "list", "text": ["第一段很长的内容在这里。", "第二段也很长的内容。"]},
        {"id": "object", "text": {"body": TEXT}},
        {"id": "flag", "text": True},
        {"id": "number", "text": 3.5},
        [TEXT],
        {"id": "big", "text": "长" * 3000},
        {"id": "shared", "text": "今天天气很好，我们一起去公园散步，看到了很多盛开的花。"},
    ))
    (forum / "b.jsonl").write_bytes(jsonl({"id": "shared", "text": "同一个编号在另一个文件里再次出现，内容不同。"}))
    os.mkfifo(forum / "pipe.jsonl")
    (forum / "folder.jsonl").mkdir()
    os.symlink("/dev/zero", forum / "zero.jsonl")
    os.symlink(outside / "leak.jsonl", forum / "leak.jsonl")

    (items / "img" / "grey16.png").write_bytes(grey16_png())
    os.mkfifo(items / "img" / "pipe.png")
    (items / "items.jsonl").write_bytes(jsonl(
        {"id": "grey16", "image": "img/grey16.png", "text": PAIR_TEXT},
        {"id": "fifo-image", "image": "img/pipe.png", "text": PAIR_TEXT},
        {"id": "grey16", "image": "img/grey16.png", "text": PAIR_TEXT + "再来一次。"},
        {"id": "text-list", "image": "img/grey16.png", "text": [PAIR_TEXT]},
    ))
    os.symlink(outside / "leak.html", shop / "leak.html")
    os.mkfifo(shop / "pipe.html")
    for label in ("rot13", "base64", "undefined", "zlib"):
        (shop / f"charset_{label}.html").write_bytes(
            f"<html><head><meta charset='{label}'></head><body><p>这一页的编码声明不是文本编码。</p>"
            f"<img src='../../pairs/hostile/img/grey16.png' alt='{PAIR_TEXT}'></body></html>".encode())
    (shop / "huge.html").write_bytes(b"<html><body>" + "很长的页面。".encode() * 30000 + b"</body></html>")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("hostile")
    raw = tmp / "raw"
    write_hostile(raw, tmp / "outside")
    params = small_params(raw, raw_limits={"max_line_bytes": 4000, "max_page_bytes": 200_000})
    outputs = SequentialRunner().run(create_pipeline(), catalog_for(tmp, params))
    quarantine = pds.dataset(tmp / "primary/quarantine").to_table().to_pandas()
    report = outputs["corpus_report"]
    return tmp, report.load() if hasattr(report, "load") else report, quarantine.set_index("id")


def test_the_run_finishes_and_the_report_balances(hostile_run):
    _, report, _ = hostile_run
    for name, entry in report["sources"].items():
        assert entry["input"] == entry["kept"] + sum(entry["dropped"].values()), name


def test_each_hostile_text_input_is_quarantined_with_its_reason(hostile_run):
    _, report, quarantine = hostile_run
    expected = {
        "list": "field_not_string", "object": "field_not_string", "flag": "field_not_string",
        "number": "field_not_string", "text/forum/a.jsonl:6": "record_not_object",
        "text/forum/a.jsonl:7": "record_too_large",
        "text/forum/pipe.jsonl": "not_a_regular_file", "text/forum/zero.jsonl": "file_outside_raw",
        "text/forum/leak.jsonl": "file_outside_raw",
    }
    for record_id, reason in expected.items():
        assert quarantine.loc[record_id, "reason"] == reason, record_id
    shared = quarantine.loc[["shared"]]
    assert shared["reason"].tolist() == ["duplicate_id"]  # the later one, from b.jsonl
    forum = report["sources"]["forum"]
    assert forum["kept"] == 2 and forum["input"] == 12


def test_each_hostile_pair_input_is_quarantined_or_kept_right(tmp_path_factory, hostile_run):
    tmp, _, quarantine = hostile_run
    pairs = pds.dataset(tmp / "primary/pairs").to_table().to_pandas().set_index("id")
    assert "grey16" in pairs.index  # a 16-bit greyscale photo is kept, not saturated
    assert quarantine.loc["fifo-image", "reason"] == "image_missing"
    assert quarantine.loc["text-list", "reason"] == "field_not_string"
    assert quarantine.loc["grey16", "reason"] == "duplicate_id"
    assert quarantine.loc["html/hostile/leak.html#page", "reason"] == "file_outside_raw"
    assert quarantine.loc["html/hostile/pipe.html#page", "reason"] == "not_a_regular_file"
    assert quarantine.loc["html/hostile/huge.html#page", "reason"] == "page_too_large"
    for label in ("rot13", "base64", "undefined", "zlib"):  # the label is ignored; UTF-8 decodes
        assert f"html/hostile/charset_{label}.html#img0" in pairs.index or \
            quarantine.loc[f"html/hostile/charset_{label}.html#img0", "reason"] == "image_near_duplicate"


def test_nothing_from_outside_the_raw_directory_reaches_any_output(hostile_run):
    tmp, _, _ = hostile_run
    for folder in ("primary/text", "primary/pairs", "primary/quarantine"):
        table = pds.dataset(tmp / folder).to_table()
        for name in ("text", "detail", "title"):
            if name in table.column_names:
                assert not any(SECRET in (v or "") for v in table.column(name).to_pylist()), (folder, name)


def test_a_raw_folder_with_no_good_record_stops_at_the_suite_naming_the_empty_corpus(tmp_path, ray_local):
    raw = tmp_path / "raw"
    (raw / "text" / "forum").mkdir(parents=True)
    (raw / "pairs" / "shop").mkdir(parents=True)
    (raw / "text" / "forum" / "a.jsonl").write_bytes(jsonl({"text": "短"}, [TEXT], b"not json"))
    (raw / "pairs" / "shop" / "items.jsonl").write_bytes(jsonl({"image": "missing.png", "text": PAIR_TEXT}))
    params = small_params(raw, embedded_sources=False, perplexity={"enabled": False})
    with pytest.raises(Exception, match=r"expect_table_row_count_to_be_between.*clean_\w+ is empty"):
        SequentialRunner().run(create_pipeline(), catalog_for(tmp_path, params))


def test_pages_alone_are_a_pair_source(tmp_path, ray_local, lexicon_path):
    from m6_pipeline.corpus.config import CorpusConfig
    from m6_pipeline.corpus.pairs_pipeline import annotate_pairs

    shop = tmp_path / "raw" / "html" / "shop"
    shop.mkdir(parents=True)
    (shop / "a.html").write_text(f"<p>{PAIR_TEXT}</p><img src='missing.png'>", "utf-8")
    cfg = CorpusConfig(raw_dir=tmp_path / "raw", text_rules={"lexicon_path": str(lexicon_path)})
    rows = annotate_pairs(tmp_path / "raw", cfg).take_all()
    assert [(r["id"], r["reason"]) for r in rows] == [("html/shop/a.html#img0", "image_missing")]
