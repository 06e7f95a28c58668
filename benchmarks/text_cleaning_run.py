"""The text half of the corpus pipeline as one call, for the benchmarks: the same library
functions and Parquet stores the Kedro nodes use, timed stage by stage."""

from __future__ import annotations

import time
from pathlib import Path

from m6_pipeline.corpus import deduplication, text_pipeline
from m6_pipeline.corpus.config import CorpusConfig
from pipelines.datasets import ArrowBatchesDataset, RayParquetDataset


def clean_text_corpus(raw: Path, cfg: CorpusConfig, out: Path) -> dict:
    """annotate -> global dedup -> route, writing `out/{annotated,clean,quarantine}`."""
    t0 = time.perf_counter()
    lm = text_pipeline.train_perplexity_model(raw, cfg)
    t_lm = time.perf_counter()
    store = RayParquetDataset(str(out / "annotated"), "text")
    store.save(text_pipeline.annotate_text(raw, cfg, lm))
    annotated = store.load()
    t_annotate = time.perf_counter()
    near = cfg.near_duplicates.enabled
    keys = ArrowBatchesDataset(str(out / "annotated"), "text", columns=deduplication.key_columns(near)).load()
    dups = deduplication.find_duplicates(deduplication.collect_keys(keys, near), cfg.near_duplicates)
    t_dedup = time.perf_counter()
    routed = annotated.select_columns(text_pipeline.ROUTED_TEXT_COLUMNS).map_batches(
        deduplication.apply_duplicates, batch_format="pyarrow", fn_kwargs={"duplicates": dups})
    RayParquetDataset(str(out / "clean"), "text").save(
        routed.map_batches(text_pipeline.kept_text, batch_format="pyarrow"))
    RayParquetDataset(str(out / "quarantine"), "text").save(
        routed.map_batches(text_pipeline.quarantined_text, batch_format="pyarrow"))
    t_end = time.perf_counter()
    return {"seconds": t_end - t0, "stages": {
        "train_lm": t_lm - t0, "annotate": t_annotate - t_lm, "dedup": t_dedup - t_annotate,
        "route_and_write": t_end - t_dedup}}
