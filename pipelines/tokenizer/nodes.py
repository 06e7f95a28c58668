"""Nodes of the `tokenizer` pipeline: thin wrappers from parameters and catalog entries to
m6_pipeline.tokenization. The corpus is streamed from the directories named in parameters;
`corpus_report` only orders this stage after the corpus stage."""

from __future__ import annotations

import itertools

from tokenizers import Tokenizer

from m6_pipeline.tokenization import TokenizerConfig, passage_batches, train_wordpiece
from m6_pipeline.tokenization.report import tokenizer_report


def parse_config(tokenizer: dict) -> TokenizerConfig:
    """Validate `parameters_tokenizer.yml` into the typed config (errors name the bad key)."""
    return TokenizerConfig.model_validate(tokenizer)


def train_tokenizer(cfg: TokenizerConfig, corpus_report: dict) -> tuple[Tokenizer, dict]:
    batches = passage_batches(cfg.text_dir, cfg.pairs_dir, cfg.batch_size, cfg.holdout_fraction)
    return train_wordpiece(batches, cfg)


def build_tokenizer_report(cfg: TokenizerConfig, tokenizer: Tokenizer, training: dict) -> dict:
    held_out = itertools.islice(
        itertools.chain.from_iterable(
            passage_batches(
                cfg.text_dir, cfg.pairs_dir, cfg.batch_size, cfg.holdout_fraction, held_out=True
            )
        ),
        cfg.max_eval_passages,
    )
    report = tokenizer_report(tokenizer, held_out, cfg.vocab_size)
    return {
        **report,
        "training": training,
        "config": cfg.model_dump(mode="json", exclude={"text_dir", "pairs_dir"}),
    }
