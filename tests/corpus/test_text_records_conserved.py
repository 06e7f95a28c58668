"""Every input record ends in the clean corpus or in quarantine, whatever the mix of inputs."""

import json
import os

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.language_model import CharBigramLM
from m6_pipeline.corpus.raw_text import parse_chunk, plan_chunks
from m6_pipeline.corpus.text_annotate import TextAnnotator
from m6_pipeline.corpus.text_filters import load_lexicon
from m6_pipeline.corpus.deduplication import apply_duplicates, collect_keys, find_duplicates
from m6_pipeline.corpus.text_pipeline import kept_text, quarantined_text

GOOD = ["这本书的翻译非常好，忠实了原著，很多复杂的句子都处理得很得体。",
        "酒店的位置很方便，离地铁站只有五分钟，服务员态度也很热情。",
        "各地认真贯彻落实中央经济工作会议精神，推动改革开放不断深入。"]
KINDS = st.sampled_from(["good", "dup", "near", "short", "spam", "html", "bad_json", "bad_utf8",
                         "blank", "no_text", "short_title", "repetitive", "symbols", "list_text",
                         "not_object", "huge", "dup_id"])
# files beside the data file that are not regular files inside raw: one quarantine row each
FILE_KINDS = st.lists(st.sampled_from(["fifo", "outside", "dangling", "device"]), max_size=3)
FILE_REASONS = {"fifo": "not_a_regular_file", "outside": "file_outside_raw", "dangling": "not_a_regular_file",
                "device": "file_outside_raw"}
MAX_LINE_BYTES = 2000


def render(kind: str, i: int) -> bytes:
    base = GOOD[i % len(GOOD)]
    obj = {
        "good": {"text": base + f"第{i}条。"},
        "dup": {"text": GOOD[0]},
        "near": {"text": GOOD[1][:-1] + "！"},
        "short": {"text": "太短了"},
        "spam": {"text": "本期六合彩开奖结果，欢迎大家关注我们的网站。"},
        "html": {"text": f"<p>{base}</p><script>alert('广告')</script>"},
        "no_text": {"title": "只有一个标题而已"},
        "short_title": {"text": base, "title": "短"},
        "repetitive": {"text": "好评返现" * 20},
        "symbols": {"text": "123456789012345678901234567890好的"},
        "list_text": {"text": [base, base]},
        "huge": {"text": base * 40},
        "dup_id": {"id": "shared", "text": base + f"编号{i}的记录。"},
    }.get(kind)
    if kind == "not_object":
        return json.dumps([base], ensure_ascii=False).encode()
    if kind == "bad_json":
        return b'{"text": "unterminated'
    if kind == "bad_utf8":
        return b'{"text": "\xff\xfe\xe4"}'
    if kind == "blank":
        return b""
    return json.dumps(obj, ensure_ascii=False).encode()


def clean(raw_dir, cfg: CorpusConfig, lm):
    annotate = TextAnnotator(cfg.text_rules, load_lexicon(cfg.text_rules.lexicon_path), lm,
                             cfg.perplexity, cfg.near_duplicates)
    annotated = pa.concat_tables([annotate(parse_chunk(c, max_line_bytes=MAX_LINE_BYTES))
                                  for c in plan_chunks(raw_dir, chunk_bytes=512)])
    dups = find_duplicates(collect_keys([annotated]), cfg.near_duplicates)
    routed = apply_duplicates(annotated, dups)
    return annotated, kept_text(routed), quarantined_text(routed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(KINDS, min_size=1, max_size=40), FILE_KINDS)
def test_records_are_conserved(tmp_path_factory, lexicon_path, kinds, file_kinds):
    raw = tmp_path_factory.mktemp("raw")
    (raw / "text" / "mixed").mkdir(parents=True)
    (raw / "text" / "mixed" / "a.jsonl").write_bytes(b"\n".join(render(k, i) for i, k in enumerate(kinds)) + b"\n")
    (raw.parent / "outside.jsonl").write_bytes(render("good", 0) + b"\n")
    for j, kind in enumerate(file_kinds):  # named b_* so they sort after a.jsonl
        name = raw / "text" / "mixed" / f"b_{j}.jsonl"
        if kind == "fifo":
            os.mkfifo(name)
        else:
            os.symlink({"outside": raw.parent / "outside.jsonl", "dangling": raw / "gone.jsonl",
                        "device": "/dev/zero"}[kind], name)
    cfg = CorpusConfig(text_rules={"lexicon_path": str(lexicon_path)})
    lm = CharBigramLM.train(GOOD * 5)
    annotated, kept, quarantine = clean(raw, cfg, lm)
    assert annotated.num_rows == len(kinds) + len(file_kinds)
    assert kept.num_rows + quarantine.num_rows == len(kinds) + len(file_kinds)
    assert set(kept.column("order").to_pylist()).isdisjoint(quarantine.column("order").to_pylist())
    reasons = dict(zip(quarantine.column("order").to_pylist(), quarantine.column("reason").to_pylist()))
    for i, kind in enumerate(kinds):
        order = i + 1  # file index 0, line i + 1
        expected = {"short": "text_too_short", "spam": "spam_lexicon", "bad_json": "unparseable_json",
                    "bad_utf8": "invalid_utf8", "blank": "unparseable_json", "no_text": "missing_text",
                    "short_title": "title_too_short", "repetitive": "character_repetition",
                    "symbols": "special_characters", "list_text": "field_not_string",
                    "not_object": "record_not_object", "huge": "record_too_large"}.get(kind)
        if kind == "dup_id" and kind in kinds[:i]:
            expected = "duplicate_id"
        if expected:
            assert reasons.get(order) == expected, (kind, reasons.get(order))
    for j, kind in enumerate(file_kinds):
        assert reasons.get((j + 1) << 32) == FILE_REASONS[kind], (kind, reasons.get((j + 1) << 32))
    # at most one copy of an exact duplicate and of a near-duplicate survives
    texts = kept.column("text").to_pylist()
    assert len(texts) == len(set(texts))
    assert sum(t.startswith(GOOD[1][:-1]) and len(t) == len(GOOD[1]) for t in texts) <= 1
