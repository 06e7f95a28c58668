"""What the tokenizer does to text it was not trained on: [UNK] rate, tokens per passage, and
whether every Chinese character is one token of its own."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Tokenizer

from m6_pipeline.tokenization.wordpiece import SPECIAL_TOKENS, special_ids

_CHINESE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")


def tokenizer_report(tokenizer: Tokenizer, held_out: Iterable[str], requested_vocab: int) -> dict:
    """Vocabulary sizes, and on the held-out passages: [UNK] rate (share of tokens), mean tokens
    per passage, characters per token, and the share of Chinese character occurrences that are
    exactly one non-[UNK] token spanning that character alone."""
    passages = list(held_out)
    unk = special_ids(tokenizer).unk
    vocab = tokenizer.get_vocab()
    n_tokens = n_unk = n_chars = n_chinese = n_chinese_single = 0
    for text, encoding in zip(passages, tokenizer.encode_batch(passages), strict=True):
        n_tokens += len(encoding.ids)
        n_unk += sum(i == unk for i in encoding.ids)
        n_chars += len(text)
        n_chinese += len(_CHINESE.findall(text))
        n_chinese_single += sum(
            1
            for i, (start, end) in zip(encoding.ids, encoding.offsets, strict=True)
            if i != unk and end - start == 1 and _CHINESE.fullmatch(text[start])
        )
    return {
        "vocab_size": {"actual": tokenizer.get_vocab_size(), "requested": requested_vocab},
        "special_tokens": {token: vocab[token] for token in SPECIAL_TOKENS},
        "vocab_chinese_characters": sum(1 for t in vocab if _CHINESE.fullmatch(t)),
        "vocab_continuing_pieces": sum(1 for t in vocab if t.startswith("##")),
        "held_out": {
            "passages": len(passages),
            "tokens": n_tokens,
            "unk_rate": n_unk / max(n_tokens, 1),
            "mean_tokens_per_passage": n_tokens / max(len(passages), 1),
            "characters_per_token": n_chars / max(n_tokens, 1),
            "chinese_characters": n_chinese,
            "chinese_single_token_share": n_chinese_single / max(n_chinese, 1),
        },
    }
