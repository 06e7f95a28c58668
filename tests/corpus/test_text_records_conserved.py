"""Every input record ends in the clean corpus or in quarantine, whatever the mix of inputs."""

import json

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
                         "blank", "no_text", "short_title", "repetitive", "symbols"])


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
    }.get(kind)
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
    annotated = pa.concat_tables([annotate(parse_chunk(c)) for c in plan_chunks(raw_dir, chunk_bytes=512)])
    dups = find_duplicates(collect_keys([annotated]), cfg.near_duplicates)
    routed = apply_duplicates(annotated, dups)
    return annotated, kept_text(routed), quarantined_text(routed)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(KINDS, min_size=1, max_size=40))
def test_records_are_conserved(tmp_path_factory, lexicon_path, kinds):
    raw = tmp_path_factory.mktemp("raw")
    (raw / "text" / "mixed").mkdir(parents=True)
    (raw / "text" / "mixed" / "a.jsonl").write_bytes(b"\n".join(render(k, i) for i, k in enumerate(kinds)) + b"\n")
    cfg = CorpusConfig(text_rules={"lexicon_path": str(lexicon_path)})
    lm = CharBigramLM.train(GOOD * 5)
    annotated, kept, quarantine = clean(raw, cfg, lm)
    assert annotated.num_rows == len(kinds)
    assert kept.num_rows + quarantine.num_rows == len(kinds)
    assert set(kept.column("order").to_pylist()).isdisjoint(quarantine.column("order").to_pylist())
    reasons = dict(zip(quarantine.column("order").to_pylist(), quarantine.column("reason").to_pylist()))
    for i, kind in enumerate(kinds):
        order = i + 1  # file index 0, line i + 1
        expected = {"short": "text_too_short", "spam": "spam_lexicon", "bad_json": "unparseable_json",
                    "bad_utf8": "invalid_utf8", "blank": "unparseable_json", "no_text": "missing_text",
                    "short_title": "title_too_short", "repetitive": "character_repetition",
                    "symbols": "special_characters"}.get(kind)
        if expected:
            assert reasons.get(order) == expected, (kind, reasons.get(order))
    # at most one copy of an exact duplicate and of a near-duplicate survives
    texts = kept.column("text").to_pylist()
    assert len(texts) == len(set(texts))
    assert sum(t.startswith(GOOD[1][:-1]) and len(t) == len(GOOD[1]) for t in texts) <= 1
