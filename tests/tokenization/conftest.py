"""A small generated corpus in the clean-corpus layout, and a tokenizer trained on it."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from m6_pipeline.tokenization import TokenizerConfig, passage_batches, train_wordpiece

CHARACTERS = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"
WORDS = ["red", "shirt", "cotton", "phone", "camera", "dress", "shoes", "iphone", "bag"]


def _sentence(rng: random.Random) -> str:
    parts = ["".join(rng.choices(CHARACTERS, k=rng.randint(4, 12))) for _ in range(3)]
    parts.insert(rng.randint(0, 3), " ".join(rng.choices(WORDS, k=rng.randint(1, 3))))
    return "，".join(parts) + "。"


def write_corpus(root, n_text: int = 120, n_pairs: int = 40, seed: int = 0):
    """Two text files and one pairs file with the columns of the clean corpus (image omitted)."""
    rng = random.Random(seed)
    text_dir, pairs_dir = root / "text", root / "pairs"
    text_dir.mkdir(parents=True)
    pairs_dir.mkdir(parents=True)
    for part in range(2):
        ids = [f"t{part}-{i}" for i in range(n_text // 2)]
        pq.write_table(
            pa.table(
                {
                    "id": ids,
                    "source": ["news"] * len(ids),
                    "title": [_sentence(rng)[:8] if i % 3 else None for i in range(len(ids))],
                    "text": [_sentence(rng) for _ in ids],
                    "order": list(range(len(ids))),
                }
            ),
            text_dir / f"text-{part:05d}.parquet",
            row_group_size=16,
        )
    ids = [f"p{i}" for i in range(n_pairs)]
    pq.write_table(
        pa.table(
            {"id": ids, "source": ["catalogue"] * n_pairs, "text": [_sentence(rng) for _ in ids]}
        ),
        pairs_dir / "pairs-00000.parquet",
    )
    return text_dir, pairs_dir


@pytest.fixture(scope="package")
def small_corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="package")
def small_config(small_corpus) -> TokenizerConfig:
    text_dir, pairs_dir = small_corpus
    return TokenizerConfig(
        text_dir=text_dir,
        pairs_dir=pairs_dir,
        vocab_size=200,
        min_frequency=2,
        batch_size=7,
        holdout_fraction=0.2,
        max_eval_passages=50,
    )


@pytest.fixture(scope="package")
def trained(small_config):
    cfg = small_config
    return train_wordpiece(
        passage_batches(cfg.text_dir, cfg.pairs_dir, cfg.batch_size, cfg.holdout_fraction), cfg
    )
