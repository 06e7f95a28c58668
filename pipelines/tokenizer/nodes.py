"""Nodes of the `tokenizer` pipeline: thin wrappers from parameters and catalog entries to
m6_pipeline.tokenization. The corpus is streamed from the directories named in parameters; a
node reads them only after the corpus suites' results pass the gate for those very files
(m6_pipeline.validation.gate). `corpus_report` orders training after the corpus accounts."""

from __future__ import annotations

import itertools

from tokenizers import Tokenizer

from m6_pipeline.tokenization import TokenizerConfig, passage_batches, train_wordpiece
from m6_pipeline.tokenization.report import tokenizer_report
from m6_pipeline.validation.gate import require_passed


def parse_config(tokenizer: dict) -> TokenizerConfig:
    """Validate `parameters_tokenizer.yml` into the typed config (errors name the bad key)."""
    return TokenizerConfig.model_validate(tokenizer)


def _require_validated(cfg: TokenizerConfig, text_validation: dict, pairs_validation: dict):
    for name, result, directory in (
        ("clean_text", text_validation, cfg.text_dir),
        ("clean_pairs", pairs_validation, cfg.pairs_dir),
    ):
        if directory is not None:  # a directory the stage does not read needs no gate
            require_passed(result, name, directory)


def train_tokenizer(
    cfg: TokenizerConfig,
    clean_text_validation: dict,
    clean_pairs_validation: dict,
    corpus_report: dict,
) -> tuple[Tokenizer, dict]:
    _require_validated(cfg, clean_text_validation, clean_pairs_validation)
    batches = passage_batches(cfg.text_dir, cfg.pairs_dir, cfg.batch_size, cfg.holdout_fraction)
    return train_wordpiece(batches, cfg)


def build_tokenizer_report(
    cfg: TokenizerConfig,
    clean_text_validation: dict,
    clean_pairs_validation: dict,
    tokenizer: Tokenizer,
    training: dict,
) -> dict:
    _require_validated(cfg, clean_text_validation, clean_pairs_validation)
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
