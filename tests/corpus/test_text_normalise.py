import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.corpus.text_normalise import (
    KEPT_PUNCTUATION,
    collapse_duplicate_punctuation,
    keep_chinese_english,
    normalise_text,
    strip_markup,
    to_simplified,
)


def is_han(ch: str) -> bool:
    """Unicode's Han script, as RE2 knows it (newer than Python's unicodedata tables)."""
    return pc.match_substring_regex(pa.array([ch]), r"^\p{Han}$")[0].as_py()


def one(fn, text):
    return fn(pa.array([text], pa.large_string()))[0].as_py()


def test_markup_and_script_content_are_removed():
    html = '<div class="a">商品<b>很好</b><script>var 广告 = "点击";</script><style>.x{}</style>！</div>'
    assert one(strip_markup, html).split() == ["商品", "很好", "！"]


def test_entities_are_unescaped():
    assert one(strip_markup, "鱼&amp;熊掌&nbsp;不可兼得") == "鱼&熊掌\xa0不可兼得"


def test_duplicate_punctuation_collapses_to_first_mark():
    assert one(collapse_duplicate_punctuation, "太好了！！！真的吗？？？……。。") == "太好了！真的吗？"


def test_only_chinese_english_digits_punctuation_remain():
    text = "价格😀 99元★★ good ☆ Привет ｶﾀｶﾅ 한국"
    assert one(keep_chinese_english, text) == "价格 99元 good"


def test_traditional_to_simplified():
    assert one(to_simplified, "這個產品質量很好，價格實惠") == "这个产品质量很好，价格实惠"


def test_full_pipeline_on_a_review():
    raw = "<p>這本書ＶＥＲＹ好看！！！強烈推薦～～～</p>"
    assert one(normalise_text, raw) == "这本书VERY好看！强烈推荐"  # ～ is a math symbol (Sm): dropped


def test_nulls_stay_null():
    assert normalise_text(pa.array([None, "好"], pa.large_string())).to_pylist() == [None, "好"]


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_output_alphabet_and_no_punctuation_runs(text):
    out = one(normalise_text, text)
    for ch in out:
        assert ch in KEPT_PUNCTUATION or ch.isascii() and (ch.isalnum() or ch == " ") or is_han(ch)
    for a, b in zip(out, out[1:]):
        assert not (a in KEPT_PUNCTUATION and b in KEPT_PUNCTUATION)


# --- work done only on the rows that need it gives what doing it on every row gives --------

import html  # noqa: E402
import unicodedata  # noqa: E402

from m6_pipeline.corpus import text_normalise as tn  # noqa: E402

_PIECES = list("中文，。！Aa1 <>&;é") + ["\u0301", "\u1100", "\u1161", "\uf900", "\u2000", "\u302a", "１",
                                           "．", "﹐", "<b>", "</p>", "&amp;", "&#20013;", "Ã©"]
_MIXED = st.lists(st.one_of(st.none(), st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)),
                  max_size=12)
_ENTITY = r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);"


def test_nfc_inert_ranges_hold_no_character_that_nfc_changes():
    for lo, hi in tn.NFC_INERT_RANGES:
        for c in range(lo, hi + 1):
            ch = chr(c)
            assert unicodedata.normalize("NFC", ch) == ch and unicodedata.combining(ch) == 0, hex(c)


@settings(max_examples=200, deadline=None)
@given(rows=_MIXED)
def test_row_selective_steps_equal_the_whole_batch_steps(rows):
    arr = pa.array(rows, pa.large_string())
    if not any(r and "Ã" in r for r in rows):  # ftfy repairs mojibake rows on top of NFC
        assert tn.fix_unicode(arr).equals(pc.utf8_normalize(arr, "NFC"))

    translated = [None if r is None else r.translate(tn._VARIANT_TABLE) for r in rows]
    assert tn.unify_punctuation_variants(arr).to_pylist() == translated

    untagged = arr
    for pattern in (tn._COMMENT, tn._SCRIPT_STYLE, tn._TAG):
        untagged = pc.replace_substring_regex(untagged, pattern, " ")
    expected = [None if r is None else html.unescape(r) if pc.match_substring_regex(
        pa.array([r]), _ENTITY)[0].as_py() else r for r in untagged.to_pylist()]
    assert tn.strip_markup(arr).to_pylist() == expected


# --- §2.3 keeps characters, digits and punctuation: no math symbols -----------------------


def test_every_kept_mark_is_unicode_punctuation():
    assert all(unicodedata.category(ch).startswith("P") for ch in KEPT_PUNCTUATION)


def test_math_symbols_are_dropped():
    text = "价格 5+3=8，a<b>c ～ x~y 很好。"
    out = one(normalise_text, text)
    assert not set("+=<>~～") & set(out)
    assert "价格" in out and "很好" in out and "5" in out
