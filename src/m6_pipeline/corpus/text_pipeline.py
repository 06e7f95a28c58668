"""The text half of corpus cleaning on Ray Data: annotate in parallel, deduplicate globally,
route every record to the clean corpus or to quarantine.

Streaming: workers read byte ranges of the raw files and write annotated Parquet; only the
deduplication keys (8 bytes of order, 8 of hash and the MinHash signature per surviving
record) come to the driver.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.language_model import CharBigramLM
from m6_pipeline.corpus.near_duplicates import estimated_jaccard, near_duplicate_clusters
from m6_pipeline.corpus.raw_text import FileChunk, parse_chunk, plan_chunks
from m6_pipeline.corpus.reasons import Reason
from m6_pipeline.corpus.text_annotate import TextAnnotator
from m6_pipeline.corpus.text_filters import load_lexicon

CLEAN_TEXT_COLUMNS = ["id", "source", "title", "text", "n_chars", "perplexity", "order"]
QUARANTINE_COLUMNS = ["id", "source", "modality", "reason", "detail", "text", "order"]
DUPLICATE_SCHEMA = pa.schema([("order", pa.int64()), ("reason", pa.large_string()),
                              ("detail", pa.large_string())])


class ChunkAnnotator:
    """Ray Data UDF: one batch of `FileChunk` rows in, their annotated records out."""

    def __init__(self, cfg: CorpusConfig, lexicon: list[str], lm: CharBigramLM | None,
                 rows_per_batch: int = 4096):
        self.annotate = TextAnnotator(cfg.text_rules, lexicon, lm, cfg.perplexity, cfg.near_duplicates)
        self.rows_per_batch = rows_per_batch

    def __call__(self, chunks: dict[str, np.ndarray]):
        fields = FileChunk.__dataclass_fields__
        for i in range(len(chunks["path"])):
            chunk = FileChunk(**{k: chunks[k][i].item() if hasattr(chunks[k][i], "item") else chunks[k][i]
                                 for k in fields})
            records = parse_chunk(chunk)
            for batch in records.to_batches(self.rows_per_batch):
                yield self.annotate(pa.Table.from_batches([batch]))


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
        table = annotate(parse_chunk(chunk))
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

    chunks = plan_chunks(raw_dir)
    if not chunks:
        raise FileNotFoundError(f"no text sources: expected {raw_dir}/text/**/*.jsonl")
    lexicon = load_lexicon(cfg.text_rules.lexicon_path)
    ds = ray.data.from_items([asdict(c) for c in chunks], override_num_blocks=len(chunks))
    # stateless tasks, not an actor pool: actors would hold every CPU of a small machine while
    # the downstream write waits for one; the LM and lexicon travel once via the object store
    return ds.map_batches(annotate_chunks, batch_size=1, batch_format="numpy",
                          compute=ray.data.TaskPoolStrategy(size=cfg.num_workers),
                          fn_kwargs={"cfg": cfg, "lexicon": lexicon, "lm": lm})


def annotate_chunks(chunks: dict[str, np.ndarray], cfg: CorpusConfig, lexicon: list[str],
                    lm: CharBigramLM | None):
    yield from ChunkAnnotator(cfg, lexicon, lm)(chunks)


def collect_dedup_keys(batches) -> tuple[pa.Table, np.ndarray]:
    """Orders, ids, exact hashes and signatures of the records that passed every rule."""
    tables, sigs = [], []
    for batch in batches:
        kept = batch.filter(pc.is_null(batch.column("reason")))
        if kept.num_rows == 0:
            continue
        tables.append(kept.select(["order", "id", "exact_hash"]))
        mh = kept.column("minhash").combine_chunks()
        width = mh.type.list_size
        sigs.append(mh.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
                    if mh.null_count == 0 else np.zeros((kept.num_rows, width), np.uint32))
    if not tables:
        return pa.table({"order": pa.array([], pa.int64()), "id": pa.array([], pa.large_string()),
                         "exact_hash": pa.array([], pa.uint64())}), np.zeros((0, 1), np.uint32)
    return pa.concat_tables(tables), np.concatenate(sigs)


def find_duplicates(keys: pa.Table, signatures: np.ndarray, bands: int, threshold: float,
                    near_enabled: bool = True) -> pa.Table:
    """Exact then near duplicates among rule-clean records; the first in corpus order stays.

    Returns one row (`order`, `reason`, `detail`) per record to drop.
    """
    if keys.num_rows == 0:
        return DUPLICATE_SCHEMA.empty_table()
    order = keys.column("order").to_numpy()
    ids = np.array(keys.column("id").to_pylist(), dtype=object)
    exact = keys.column("exact_hash").to_numpy()
    by = np.lexsort((order, exact))  # by hash, then corpus order
    exact_sorted = exact[by]
    group_start = np.concatenate(([True], exact_sorted[1:] != exact_sorted[:-1]))
    first_of_group = by[np.maximum.accumulate(np.where(group_start, np.arange(len(by)), 0))]
    dup_rows = by[~group_start]
    out_order = [order[dup_rows]]
    out_reason = [np.full(len(dup_rows), str(Reason.EXACT_DUPLICATE), dtype=object)]
    out_detail = [np.array([f"duplicate of {ids[r]}" for r in first_of_group[~group_start]], dtype=object)]

    if near_enabled and signatures.shape[1] > 1:
        survivors = by[group_start]
        survivors = survivors[np.argsort(order[survivors])]  # corpus order
        rep = near_duplicate_clusters(signatures[survivors], bands, threshold)
        near = np.flatnonzero(rep != np.arange(len(rep)))
        rows, reps = survivors[near], survivors[rep[near]]
        similarity = estimated_jaccard(signatures[rows], signatures[reps])
        out_order.append(order[rows])
        out_reason.append(np.full(len(rows), str(Reason.NEAR_DUPLICATE), dtype=object))
        out_detail.append(np.array([f"near-duplicate of {ids[r]} (estimated Jaccard {s:.2f})"
                                    for r, s in zip(reps, similarity)], dtype=object))
    return pa.table({"order": np.concatenate(out_order).astype(np.int64),
                     "reason": pa.array(np.concatenate(out_reason), pa.large_string()),
                     "detail": pa.array(np.concatenate(out_detail), pa.large_string())},
                    schema=DUPLICATE_SCHEMA)


def apply_duplicates(batch: pa.Table, duplicates: pa.Table) -> pa.Table:
    """Ray Data UDF (a task: the duplicates table reaches workers through the object store)."""
    return ApplyDuplicates(duplicates)(batch)


class ApplyDuplicates:
    """Set the duplicate reasons found by `find_duplicates` on their records."""

    def __init__(self, duplicates: pa.Table):
        order = duplicates.column("order").to_numpy()
        sort = np.argsort(order)
        self.order = order[sort]
        self.reason = np.array(duplicates.column("reason").to_pylist(), dtype=object)[sort]
        self.detail = np.array(duplicates.column("detail").to_pylist(), dtype=object)[sort]

    def __call__(self, batch: pa.Table) -> pa.Table:
        if len(self.order) == 0:
            return batch
        order = batch.column("order").to_numpy()
        pos = np.minimum(np.searchsorted(self.order, order), len(self.order) - 1)
        hit = self.order[pos] == order
        if not hit.any():
            return batch
        reason = np.array(batch.column("reason").to_pylist(), dtype=object)
        detail = np.array(batch.column("detail").to_pylist(), dtype=object)
        reason[hit], detail[hit] = self.reason[pos[hit]], self.detail[pos[hit]]
        batch = batch.set_column(batch.schema.get_field_index("reason"), "reason",
                                 pa.array(reason, pa.large_string()))
        return batch.set_column(batch.schema.get_field_index("detail"), "detail",
                                pa.array(detail, pa.large_string()))


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
