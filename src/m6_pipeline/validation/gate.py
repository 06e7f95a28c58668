"""The gate between the corpus stage and the stages that read the clean corpus.

Each stage that reads `data/03_primary/text` or `.../pairs` takes the matching validation
result (`clean_text_validation`, `clean_pairs_validation`) as a Kedro input, so no runner or
`--from-nodes` can schedule it before the suite, and calls `require_passed` before it reads a
row. The gate refuses a result that failed, one that validated no rows, one written before
results recorded what they validated, and a stale one: the Parquet files in the directory the
stage reads are not the files the suite read (a corpus re-run that stopped at its suite leaves
the last passing result behind).

The fingerprint is the files' names and sizes, not their contents: it costs one `stat` a file
at any corpus size, the corpus stage writes deterministic file names, and a rewrite that keeps
every file's name and byte size is not a failure this gate has to catch.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

from m6_pipeline.data.parquet_stream import parquet_files
from m6_pipeline.storage import location
from m6_pipeline.validation.suites import ROW_COUNT, CorpusValidationError

log = logging.getLogger(__name__)

RERUN = "re-run the corpus stage (`kedro run --pipeline=corpus`), which validates it again"


def files_fingerprint(files: Iterable[str | Path]) -> dict:
    """`{"directory", "files", "bytes", "digest"}` of Parquet files: the sha256 of their sorted
    `name<TAB>size` lines. Names, not paths, count: a copied directory has the same digest."""
    found = [location(f) for f in files]  # local paths or URIs (a corpus kept in a bucket)
    entries = sorted((f.name, f.size()) for f in found)
    lines = "\n".join(f"{name}\t{size}" for name, size in entries)
    digest = hashlib.sha256(lines.encode()).hexdigest()
    directories = sorted({f.parent().uri for f in found})
    return {"directory": directories[0] if len(directories) == 1 else directories or None,
            "files": len(entries), "bytes": sum(size for _, size in entries), "digest": digest}


def directory_fingerprint(directory: str | Path) -> dict:
    """The fingerprint of what a downstream stage reads: every `*.parquet` under `directory`."""
    files = location(directory).glob("*.parquet")
    if not files:
        parquet_files(directory)  # raises, saying which stage writes them
    return files_fingerprint(files)


def failed_expectations(result: dict) -> list[str]:
    """The expectations of a suite result that had failing rows, with their counts."""
    counts = result.get("unexpected_rows") or {}
    return [f"{name} ({count} rows)" for name, count in counts.items() if count]


def require_passed(result: dict | None, name: str, data_dir: str | Path | None = None) -> None:
    """Raise `CorpusValidationError` unless `result` (a suite's `as_dict()`, as saved in
    `data/08_reporting/corpus/validation_<name>.json`) passed on at least one row, and, when
    `data_dir` is given, validated exactly the Parquet files now under `data_dir`."""
    where = f" ({data_dir})" if data_dir is not None else ""
    if not isinstance(result, dict) or "success" not in result:
        raise CorpusValidationError(f"{name}{where}: no validation result to check; {RERUN}.")
    suite = result.get("suite", name)
    if not result["success"]:
        failed = failed_expectations(result) or ["(no expectation recorded)"]
        raise CorpusValidationError(
            f"{name}{where} failed suite {suite!r}: {', '.join(failed)}. This stage does not "
            "read a corpus that failed its suite: fix the cleaning rule or the raw input that "
            f"the corpus run's error names, and {RERUN}.")
    if not result.get("rows"):
        raise CorpusValidationError(
            f"{name}{where} failed suite {suite!r}: {ROW_COUNT}: {name} is empty (the suite "
            f"validated 0 rows). Check the quarantine reasons and `corpus.raw_dir`, then {RERUN}.")
    validated = result.get("fingerprint")
    if data_dir is None:
        return
    if not validated or not validated.get("files"):
        raise CorpusValidationError(
            f"{name}{where}: the result of suite {suite!r} does not record which files it "
            f"validated (written by an older version, or from data held in memory); {RERUN}.")
    try:
        current = directory_fingerprint(data_dir)
    except FileNotFoundError as err:
        raise CorpusValidationError(f"{name}: {err}") from err
    if current["digest"] != validated["digest"]:
        raise CorpusValidationError(
            f"{name}{where}: the result of suite {suite!r} is stale: it validated "
            f"{validated['files']} files, {validated['bytes']} bytes under "
            f"{validated['directory']}; {data_dir} now holds {current['files']} files, "
            f"{current['bytes']} bytes. The corpus changed after it was validated (a corpus run "
            f"that stopped at its suite, or files copied in); {RERUN}.")
    log.info("%s: suite %r passed on %d rows (%d files, digest %s)", name, suite,
             result["rows"], current["files"], current["digest"][:12])
