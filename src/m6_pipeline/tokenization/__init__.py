"""WordPiece tokenization of §3.1: BERT's normaliser and pre-tokeniser, every Chinese character
its own token, fixed ids for the special tokens, trained by streaming the clean corpus."""

from m6_pipeline.tokenization.corpus_text import passage_batches
from m6_pipeline.tokenization.wordpiece import (
    SPECIAL_TOKENS,
    SpecialIds,
    TokenizerConfig,
    build_wordpiece,
    detokenize,
    special_ids,
    train_wordpiece,
)

__all__ = [
    "SPECIAL_TOKENS",
    "SpecialIds",
    "TokenizerConfig",
    "build_wordpiece",
    "detokenize",
    "passage_batches",
    "special_ids",
    "train_wordpiece",
]
