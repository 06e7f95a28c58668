"""The WordPiece tokenizer of §3.1, built with Hugging Face `tokenizers`.

BERT's normaliser puts spaces around every CJK character, so each Chinese character is its
own word and hence its own token; Latin words split into `##` pieces. The seven special tokens
come first in the vocabulary with fixed ids (`[PAD]`=0 ... `[EOS]`=6). Encoding adds no special
tokens: the model code places `[CLS]`, `[SEP]`, `[BOS]`, `[EOS]` itself.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

log = logging.getLogger(__name__)

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]")
CONTINUING_PREFIX = "##"


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int
    bos: int
    eos: int


def special_ids(tokenizer: Tokenizer) -> SpecialIds:
    """The ids of SPECIAL_TOKENS in `tokenizer`; raises if any is missing."""
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    missing = [token for token, i in ids.items() if i is None]
    if missing:
        raise ValueError(
            f"tokenizer lacks the special tokens {missing}: train it with "
            "m6_pipeline.tokenization.train_wordpiece, which adds SPECIAL_TOKENS"
        )
    names = [f.name for f in dataclasses.fields(SpecialIds)]
    return SpecialIds(**dict(zip(names, ids.values(), strict=True)))


class TokenizerConfig(BaseModel):
    """`parameters_tokenizer.yml`, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_dir: Path | None = Field(
        Path("data/03_primary/text"), description="clean text Parquet (id, title, text)"
    )
    pairs_dir: Path | None = Field(
        Path("data/03_primary/pairs"), description="clean image-text pairs Parquet (id, text)"
    )
    vocab_size: int = Field(21128, gt=len(SPECIAL_TOKENS), description="requested vocabulary")
    min_frequency: int = Field(2, ge=1, description="least count of a merged piece")
    limit_alphabet: int | None = Field(None, description="most single characters kept; None: all")
    batch_size: int = Field(4096, ge=1, description="rows per streamed record batch")
    holdout_fraction: float = Field(
        0.01, ge=0.0, lt=0.5, description="share of records (by id hash) kept for the report"
    )
    max_eval_passages: int = Field(2000, ge=1, description="held-out passages in the report")

    @model_validator(mode="after")
    def _some_input(self) -> TokenizerConfig:
        if self.text_dir is None and self.pairs_dir is None:
            raise ValueError("tokenizer: set text_dir or pairs_dir (or both)")
        return self


def build_wordpiece() -> Tokenizer:
    """An untrained tokenizer with the BERT-Chinese normaliser, pre-tokeniser and decoder."""
    tokenizer = Tokenizer(
        models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=CONTINUING_PREFIX)
    )
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix=CONTINUING_PREFIX)
    return tokenizer


def train_wordpiece(
    batches: Iterable[list[str]], config: TokenizerConfig
) -> tuple[Tokenizer, dict]:
    """Train on a stream of passage batches; returns the tokenizer and what it was trained on
    (passages, characters, seconds). The vocabulary may be smaller than requested on a
    small corpus: read `get_vocab_size()`."""
    counts = {"passages": 0, "characters": 0}

    def counted() -> Iterator[list[str]]:
        for batch in batches:
            counts["passages"] += len(batch)
            counts["characters"] += sum(map(len, batch))
            yield batch

    limit = {} if config.limit_alphabet is None else {"limit_alphabet": config.limit_alphabet}
    trainer = trainers.WordPieceTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        continuing_subword_prefix=CONTINUING_PREFIX,
        show_progress=False,
        **limit,
    )
    tokenizer = build_wordpiece()
    start = time.perf_counter()
    tokenizer.train_from_iterator(counted(), trainer=trainer)
    seconds = time.perf_counter() - start
    if counts["passages"] == 0:
        raise ValueError("tokenizer: no training passages (empty corpus, or all held out)")
    ids = special_ids(tokenizer)
    if list(dataclasses.astuple(ids)) != list(range(len(SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens got ids {ids}, expected 0..{len(SPECIAL_TOKENS) - 1}")
    log.info(
        "WordPiece: %d tokens (requested %d) from %d passages, %d characters in %.1f s",
        tokenizer.get_vocab_size(),
        config.vocab_size,
        counts["passages"],
        counts["characters"],
        seconds,
    )
    return tokenizer, {**counts, "seconds": round(seconds, 2)}


# CJK ideographs and CJK/full-width punctuation: Chinese text carries no spaces around them
_CJK_RANGES = (
    "\u2e80-\u2fdf\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef\U00020000-\U0002fa1f"
)
_SPACE_BY_CJK = re.compile(rf"(?<=[{_CJK_RANGES}])\s+|\s+(?=[{_CJK_RANGES}])")


def detokenize(tokenizer: Tokenizer, ids: list[int], skip_special_tokens: bool = True) -> str:
    """Decode ids to text without the spaces WordPiece puts between Chinese characters.
    Latin words stay space-separated; text is lower-cased by the normaliser."""
    return _SPACE_BY_CJK.sub("", tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))
