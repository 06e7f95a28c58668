from collections import Counter
import math

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.corpus.text_filters import (
    LexiconMatcher,
    character_repetition_ratio,
    load_lexicon,
    special_character_ratio,
)


def reference_repetition(text: str, n: int) -> float:
    """Data-Juicer's character_repetition_filter ratio, written per document."""
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    freq = sorted(Counter(grams).values(), reverse=True)
    if not freq:
        return 0.0
    singles = sum(1 for f in freq if f == 1)
    k = min(int(math.sqrt(len(freq))), len(freq) - singles)
    return sum(freq[:k]) / sum(freq)


def test_repetition_of_spam_is_high_and_of_prose_is_zero():
    spam = "好评返现好评返现好评返现好评返现好评返现好评返现好评返现"
    prose = "这本书的翻译非常好，忠实了原著，用词也很得体。"
    ratio = character_repetition_ratio(CodepointBatch.from_strings([spam, prose]), 10)
    assert ratio[0] > 0.5
    assert ratio[1] == 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(alphabet="好评返现书很不错。ab", max_size=60), min_size=1, max_size=8),
       st.integers(2, 10))
def test_repetition_matches_the_per_document_definition(texts, n):
    got = character_repetition_ratio(CodepointBatch.from_strings(texts), n)
    want = [reference_repetition(t, n) for t in texts]
    np.testing.assert_allclose(got, want)


def test_special_character_ratio_counts_digits_symbols_and_emoji_not_chinese_punctuation():
    ratio = special_character_ratio(CodepointBatch.from_strings(["12345好好好好好", "你好，世界。", "😀😀好好", ""]))
    np.testing.assert_allclose(ratio, [0.5, 0.0, 0.5, 0.0])


def test_lexicon_file_parsing_and_matching(tmp_path, lexicon_path):
    words = load_lexicon(lexicon_path)
    assert "六合彩" in words and all(not w.startswith("#") for w in words)
    matcher = LexiconMatcher(["六合彩", "AV女优"])
    rows = pa.array(["本期六合彩开奖结果", "正常的商品评论内容", None, "看av女优"], pa.large_string())
    assert matcher.matches(rows).tolist() == [True, False, False, True]
    assert matcher.first_match("本期六合彩开奖") == "六合彩"


def test_missing_lexicon_names_the_setting(tmp_path):
    try:
        load_lexicon(tmp_path / "nope.txt")
    except FileNotFoundError as err:
        assert "lexicon_path" in str(err)
    else:
        raise AssertionError("expected FileNotFoundError")
