"""Great Expectations suites on the clean corpus, run batch by batch over the Parquet output.

A failing suite raises `CorpusValidationError` naming the expectation, the column and example
rows, which stops the Kedro run. Batches keep memory flat on large corpora; expectations
that need the whole table are checked here on the running count (at least one row: GE sees
one batch at a time, and an empty table has no batch) or by the caller on the id column alone
(unique ids). The report records the rows it saw and a fingerprint of the files it read, which
the stages downstream check before they read the corpus (`m6_pipeline.validation.gate`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from m6_pipeline.corpus.reasons import Reason


class CorpusValidationError(RuntimeError):
    pass


ROW_COUNT = "expect_table_row_count_to_be_between(min_value=1)"
# the clean tables must hold something to train on; an empty quarantine is a clean input
NONEMPTY = {"clean_text": True, "clean_pairs": True, "quarantine": False}


def _expectations(kind: str, min_text_chars: int, min_pixels: int) -> list:
    import great_expectations as gx

    E = gx.expectations
    common = [E.ExpectColumnValuesToNotBeNull(column="id"), E.ExpectColumnValuesToNotBeNull(column="source")]
    if kind == "clean_text":
        return common + [
            E.ExpectColumnValuesToNotBeNull(column="text"),
            E.ExpectColumnValueLengthsToBeBetween(column="text", min_value=min_text_chars),
            # §2.3: only Chinese, English letters, digits and punctuation remain; no markup
            E.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"<[A-Za-z/!][^>]*>"),
            E.ExpectColumnValuesToNotMatchRegex(column="text", regex=r"([。，！？；：])\1"),
        ]
    if kind == "clean_pairs":
        return common + [
            E.ExpectColumnValuesToNotBeNull(column="text"),
            E.ExpectColumnValuesToNotBeNull(column="image"),
            E.ExpectColumnValuesToBeBetween(column="pixels", min_value=min_pixels),
        ]
    if kind == "quarantine":
        return common + [
            E.ExpectColumnValuesToBeInSet(column="reason", value_set=[str(r) for r in Reason]),
            E.ExpectColumnValuesToBeInSet(column="modality", value_set=["text", "pairs"]),
        ]
    raise ValueError(f"unknown corpus suite {kind!r}")


@dataclass
class SuiteReport:
    suite: str
    batches: int = 0
    rows: int = 0
    expectations: dict[str, int] = field(default_factory=dict)  # expectation -> failing rows
    fingerprint: dict | None = None  # the files validated (gate.files_fingerprint)

    @property
    def success(self) -> bool:
        return not any(self.expectations.values())

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "batches": self.batches,
                "rows": self.rows, "unexpected_rows": self.expectations,
                "fingerprint": self.fingerprint}


def validate_batches(kind: str, batches: Iterable[pd.DataFrame], *, min_text_chars: int = 15,
                     min_pixels: int = 5000, files: Iterable[str] | None = None,
                     table: str | None = None) -> SuiteReport:
    """Run suite `kind` over every batch; raise on the first batch that fails, or on an empty
    table (`table` names it in the error, `kind` by default). `files` are the Parquet files the
    batches come from: their fingerprint, taken before reading, goes into the report."""
    import great_expectations as gx

    from m6_pipeline.validation.gate import files_fingerprint

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    asset = context.data_sources.add_pandas("corpus").add_dataframe_asset(kind)
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=kind))
    for expectation in _expectations(kind, min_text_chars, min_pixels):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_def, suite=suite, name=f"{kind}_definition"))
    report = SuiteReport(kind, fingerprint=None if files is None else files_fingerprint(files))
    for df in batches:
        if df.empty:  # Ray may hand out empty blocks; they carry nothing to check
            continue
        if "image" in df.columns:  # bytes are not what the suite checks; keep GE's copies small
            df = df.assign(image=df["image"].map(len, na_action="ignore"))
        result = definition.run(batch_parameters={"dataframe": df})
        report.batches += 1
        report.rows += len(df)
        for res in result.results:
            kwargs = res.expectation_config.kwargs
            name = f"{res.expectation_config.type}({kwargs.get('column')}{', ' + kwargs['regex'] if 'regex' in kwargs else ''})"
            report.expectations[name] = report.expectations.get(name, 0) + int(
                res.result.get("unexpected_count") or (0 if res.success else 1))
            if not res.success:
                rows = res.result.get("partial_unexpected_index_list") or []
                ids = df["id"].iloc[[i for i in rows if isinstance(i, int)][:5]].tolist() if rows else []
                raise CorpusValidationError(
                    f"suite {kind!r} failed on {table or kind}: {name} on batch "
                    f"{report.batches}; unexpected values "
                    f"{res.result.get('partial_unexpected_list', [])[:5]} in records {ids}. "
                    "Fix the cleaning step that produced them or the raw input.")
    if NONEMPTY[kind]:
        report.expectations[ROW_COUNT] = int(report.rows == 0)
        if report.rows == 0:
            where = f" under {report.fingerprint['directory']}" if report.fingerprint else ""
            raise CorpusValidationError(
                f"suite {kind!r} failed: {ROW_COUNT}: {table or kind} is empty (0 rows{where}). "
                "Every record went to quarantine or none was read: see the `reason` column of "
                "data/03_primary/quarantine, or check `corpus.raw_dir` in parameters_corpus.yml.")
    return report
