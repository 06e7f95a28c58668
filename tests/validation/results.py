"""Validation results for downstream-stage tests: what the corpus stage saves when its suite
passed on the files under a directory (the suites themselves: test_corpus_suites.py)."""

from __future__ import annotations

import pyarrow.parquet as pq

from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.validation.gate import files_fingerprint
from m6_pipeline.validation.suites import SuiteReport


def passed_result(kind: str, directory) -> dict:
    files = parquet_files(directory)
    rows = sum(pq.read_metadata(f).num_rows for f in files)
    return SuiteReport(kind, batches=len(files), rows=rows, fingerprint=files_fingerprint(files)).as_dict()
