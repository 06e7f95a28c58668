"""The text half of corpus cleaning on Ray Data: annotate in parallel, then (see
`deduplication`) deduplicate globally and route every record to the clean corpus or to
quarantine.

Streaming: workers read byte ranges of the raw files and write annotated Parquet; only the
deduplication keys come to the driver.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.language_model import CharBigramLM
from m6_pipeline.corpus.raw_text import FileChunk, balanced_parts, chunk_location, parse_chunk, plan_chunks
from m6_pipeline.corpus.reasons import CorpusInputError
from m6_pipeline.corpus.text_annotate import TextAnnotator
from m6_pipeline.corpus.text_filters import load_lexicon

# pieces a task parses one at a time, and how many tasks each worker gets
PIECE_BYTES = 1 << 20
PARTS_PER_WORKER = 2
MAX_PART_BYTES = 32 << 20  # Ray's Parquet write holds a task's whole output

CLEAN_TEXT_COLUMNS = ["id", "source", "title", "text", "n_chars", "perplexity", "order"]
# what routing reads back: not the dedup keys (a MinHash signature is 64 numbers a record)
ROUTED_TEXT_COLUMNS = CLEAN_TEXT_COLUMNS + ["reason", "detail"]


def reference_texts(raw_dir: Path, cfg: CorpusConfig, lexicon: list[str]) -> list[str]:
    """Rule-clean text of the reference sources, in corpus order, up to `reference_max_docs`."""
    wanted = set(cfg.perplexity.reference_sources)
    plain = cfg.model_copy(update={"perplexity": cfg.perplexity.model_copy(update={"enabled": False}),
                                   "near_duplicates": cfg.near_duplicates.model_copy(update={"enabled": False})})
    annotate = TextAnnotator(plain.text_rules, lexicon, None, plain.perplexity, plain.near_duplicates)
    texts: list[str] = []
    for chunk in plan_chunks(raw_dir):
        if wanted and chunk.source not in wanted:
            continue
        table = annotate(parse_chunk(chunk, max_line_bytes=cfg.raw_limits.max_line_bytes))
        ok = pc.is_null(table.column("reason"))
        if wanted:
            ok = pc.and_(ok, pc.is_in(table.column("source"), pa.array(sorted(wanted))))
        texts.extend(table.filter(ok).column("text").to_pylist())
        if len(texts) >= cfg.perplexity.reference_max_docs:
            break
    if not texts:
        raise ValueError(
            f"no rule-clean reference text in sources {sorted(wanted)} under {raw_dir}/text: set "
            "corpus.perplexity.reference_sources to sources that exist, or disable the filter"
        )
    return texts[: cfg.perplexity.reference_max_docs]


def train_perplexity_model(raw_dir: Path, cfg: CorpusConfig) -> CharBigramLM | None:
    if not cfg.perplexity.enabled:
        return None
    lexicon = load_lexicon(cfg.text_rules.lexicon_path)
    return CharBigramLM.train(reference_texts(raw_dir, cfg, lexicon), cfg.perplexity.discount)


def annotate_text(raw_dir: Path, cfg: CorpusConfig, lm: CharBigramLM | None):
    """A lazy Ray Dataset of every text record with its first failing rule and dedup keys."""
    import ray.data

    chunks = plan_chunks(raw_dir, chunk_bytes=PIECE_BYTES)
    if not chunks:
        raise FileNotFoundError(f"no text sources: expected {raw_dir}/text/**/*.jsonl")
    total = sum(c.end - c.start for c in chunks)
    parts = balanced_parts(chunks, max(PARTS_PER_WORKER * cfg.num_workers, -(-total // MAX_PART_BYTES)))
    lexicon = load_lexicon(cfg.text_rules.lexicon_path)
    ds = ray.data.from_items([{"part": i} for i in range(len(parts))], override_num_blocks=len(parts))
    # stateless tasks with the default compute, so Ray fuses them with the Parquet write that
    # follows (one task reads, annotates and writes a part: no block crosses the object store);
    # the plan, LM and lexicon travel once via the object store
    return ds.map_batches(annotate_parts, batch_size=1, batch_format="numpy",
                          fn_kwargs={"parts": parts, "cfg": cfg, "lexicon": lexicon, "lm": lm})


def annotate_parts(batch: dict[str, np.ndarray], parts: list[list[FileChunk]], cfg: CorpusConfig,
                   lexicon: list[str], lm: CharBigramLM | None, rows_per_batch: int = 4096):
    """Ray Data UDF: part indices in, the annotated records of their chunks out (streamed)."""
    annotate = TextAnnotator(cfg.text_rules, lexicon, lm, cfg.perplexity, cfg.near_duplicates)
    max_line_bytes = cfg.raw_limits.max_line_bytes
    for part in batch["part"]:
        for chunk in parts[int(part)]:
            try:
                tables = [annotate(pa.Table.from_batches([records])) for records in
                          parse_chunk(chunk, max_line_bytes=max_line_bytes).to_batches(rows_per_batch)]
            except Exception as error:  # noqa: BLE001 - the error policy of reasons.CorpusInputError
                raise CorpusInputError(chunk_location(chunk), error) from error
            yield from tables


def kept_text(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch.column("reason"))).select(CLEAN_TEXT_COLUMNS)


def quarantined_text(batch: pa.Table) -> pa.Table:
    dropped = batch.filter(pc.is_valid(batch.column("reason")))
    snippet = pc.utf8_slice_codeunits(dropped.column("text"), 0, 500)
    return pa.table({
        "id": dropped.column("id"), "source": dropped.column("source"),
        "modality": pa.array(["text"] * dropped.num_rows, pa.large_string()),
        "reason": dropped.column("reason"), "detail": dropped.column("detail"),
        "text": snippet, "order": dropped.column("order"),
    })
