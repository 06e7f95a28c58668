"""Small token shards with learnable structure, written in the shard format of
`m6_pipeline.pretraining.shards`: each text is an arithmetic run of token ids, and each image's
patch features encode the run's first token, so every task has something to learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m6_pipeline.pretraining.shards import PAIRS_SCHEMA, TEXT_SCHEMA
from m6_pipeline.pretraining.tasks import SpecialTokens

SPECIAL = SpecialTokens(pad=0, sep=3, mask=4, bos=5, eos=6)
FIRST_WORD = 10


def arithmetic_run(rng: np.random.Generator, vocab: int) -> list[int]:
    start = int(rng.integers(FIRST_WORD, vocab))
    step = int(rng.integers(1, 3))
    length = int(rng.integers(8, 20))
    return [FIRST_WORD + (start - FIRST_WORD + step * i) % (vocab - FIRST_WORD) for i in range(length)]


def write_synthetic_shards(
    root: Path, *, vocab: int = 40, n_text: int = 600, n_pairs: int = 300,
    n_patches: int = 4, d_feature: int = 8, row_group_rows: int = 64, seed: int = 0,
) -> Path:
    rng = np.random.default_rng(seed)
    for split, share in (("train", 1.0), ("val", 0.25)):
        texts = [arithmetic_run(rng, vocab) for _ in range(int(n_text * share))]
        (root / "text").mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(
            [{"id": f"t{split}{i}", "token_ids": t} for i, t in enumerate(texts)], schema=TEXT_SCHEMA
        )
        pq.write_table(table, root / "text" / f"{split}-00000.parquet", row_group_size=row_group_rows)
        rows = []
        for i in range(int(n_pairs * share)):
            tokens = arithmetic_run(rng, vocab)
            features = np.zeros((n_patches, d_feature), dtype="<f2")
            features[:, :] = (tokens[0] - FIRST_WORD) / vocab
            features[0, tokens[0] % d_feature] = 1.0
            rows.append({"id": f"p{split}{i}", "token_ids": tokens, "n_patches": n_patches,
                         "d_feature": d_feature, "patch_features": features.tobytes()})
        (root / "pairs").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA),
                       root / "pairs" / f"{split}-00000.parquet", row_group_size=row_group_rows)
    return root
