"""Passages of the clean corpus as a stream of small batches (never the whole table in memory).

Text records give `title + "\n" + text`, image-text pairs give their text. A stable hash of the
record id holds a small share out of training, for the tokenizer report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from m6_pipeline.data.parquet_stream import is_held_out, parquet_batches


def passage_batches(
    text_dir: str | Path | None,
    pairs_dir: str | Path | None,
    batch_size: int,
    holdout_fraction: float,
    held_out: bool = False,
) -> Iterator[list[str]]:
    """Lists of passages (at most `batch_size` each): the training part (`held_out=False`) or
    the held-out part (`held_out=True`) of the clean text and the pair texts."""
    sources = [(text_dir, ["id", "title", "text"]), (pairs_dir, ["id", "text"])]
    for directory, columns in sources:
        if directory is None:
            continue
        for batch in parquet_batches(directory, columns, batch_size):
            rows = batch.to_pydict()
            titles = rows.get("title") or [None] * batch.num_rows
            out = [
                f"{title}\n{text}" if title else text
                for record_id, title, text in zip(rows["id"], titles, rows["text"], strict=True)
                if text and is_held_out(record_id, holdout_fraction) == held_out
            ]
            if out:
                yield out
