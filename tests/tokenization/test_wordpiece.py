"""The WordPiece tokenizer: fixed special ids, one token per Chinese character, decode
roundtrip, streaming input, and the report."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tokenizers import Tokenizer

from m6_pipeline.tokenization import (
    SPECIAL_TOKENS,
    SpecialIds,
    TokenizerConfig,
    build_wordpiece,
    detokenize,
    passage_batches,
    special_ids,
    train_wordpiece,
)
from m6_pipeline.tokenization.report import tokenizer_report


def test_special_tokens_have_fixed_ids(trained):
    tokenizer, _ = trained
    assert special_ids(tokenizer) == SpecialIds(pad=0, unk=1, cls=2, sep=3, mask=4, bos=5, eos=6)
    assert [tokenizer.id_to_token(i) for i in range(7)] == list(SPECIAL_TOKENS)
    # special tokens survive the normaliser (no lower-casing, no splitting at the brackets)
    assert tokenizer.encode("我[MASK]的[SEP]").ids == [
        tokenizer.token_to_id("我"),
        4,
        tokenizer.token_to_id("的"),
        3,
    ]
    # encoding adds no special tokens of its own: the model places them
    assert tokenizer.encode("我").ids == [tokenizer.token_to_id("我")]


def test_special_ids_names_what_is_missing():
    bare = Tokenizer.from_str(build_wordpiece().to_str())
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[PAD\]'"):
        special_ids(bare)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_chinese_character_is_its_own_token_and_decodes_back(trained, data):
    tokenizer, _ = trained
    chinese = sorted(t for t in tokenizer.get_vocab() if "\u4e00" <= t <= "\u9fff")
    assert len(chinese) > 30
    text = data.draw(st.text(alphabet=chinese + list("，。"), min_size=1, max_size=40))
    encoding = tokenizer.encode(text)
    assert encoding.tokens == list(text)
    assert detokenize(tokenizer, encoding.ids) == text


def test_latin_words_split_into_pieces_and_are_lowercased(trained):
    tokenizer, _ = trained
    tokens = tokenizer.encode("的一 Cotton shirts").tokens
    assert tokens[:2] == ["的", "一"] and tokens[2] == "cotton"
    assert tokens[3:][0] == "shirt" and all(t.startswith("##") for t in tokens[4:])
    assert detokenize(tokenizer, tokenizer.encode("的red shirt").ids) == "的red shirt"


def test_streaming_batches_are_bounded_and_split_train_from_held_out(small_config, small_corpus):
    cfg = small_config
    train = list(passage_batches(cfg.text_dir, cfg.pairs_dir, 7, cfg.holdout_fraction))
    held = list(passage_batches(cfg.text_dir, cfg.pairs_dir, 7, cfg.holdout_fraction, True))
    assert max(map(len, train + held)) <= 7
    n_train, n_held = sum(map(len, train)), sum(map(len, held))
    assert n_train + n_held == 160 and 0 < n_held < 80
    # titles come with their text
    assert any("\n" in passage for passage in itertools.chain(*train))


def test_training_consumes_a_lazy_stream(small_config):
    seen = []

    def stream():
        for batch in passage_batches(small_config.text_dir, None, 5, 0.0):
            seen.append(len(batch))
            yield batch

    tokenizer, stats = train_wordpiece(stream(), small_config)
    assert stats["passages"] == sum(seen) == 120 and max(seen) <= 5
    assert tokenizer.get_vocab_size() <= small_config.vocab_size


def test_actual_vocabulary_may_fall_short_of_the_request(small_config):
    big = small_config.model_copy(update={"vocab_size": 50_000})
    tokenizer, _ = train_wordpiece(passage_batches(big.text_dir, big.pairs_dir, 64, 0.2), big)
    assert tokenizer.get_vocab_size() < 50_000
    report = tokenizer_report(tokenizer, ["的一是"], 50_000)
    assert report["vocab_size"] == {"actual": tokenizer.get_vocab_size(), "requested": 50_000}


def test_report_on_held_out_text(trained, small_config):
    tokenizer, _ = trained
    report = tokenizer_report(tokenizer, ["我们的国。", "说 iphone 和龘"], small_config.vocab_size)
    held = report["held_out"]
    assert held["passages"] == 2 and held["chinese_characters"] == 7
    # 龘 never occurs in training: one [UNK], and the only Chinese character not its own token
    assert held["unk_rate"] == pytest.approx(1 / held["tokens"])
    assert held["chinese_single_token_share"] == pytest.approx(6 / 7)
    assert report["special_tokens"]["[EOS]"] == 6


def test_config_rejects_nonsense():
    with pytest.raises(ValidationError, match="vocab_size"):
        TokenizerConfig(vocab_size=5)
    with pytest.raises(ValidationError, match="text_dir or pairs_dir"):
        TokenizerConfig(text_dir=None, pairs_dir=None)
    with pytest.raises(ValidationError, match="extra"):
        TokenizerConfig(vocab_sise=100)


def test_special_ids_is_a_frozen_dataclass():
    ids = SpecialIds(*range(7))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ids.pad = 3
