"""Great Expectations suites on the clean corpus, run batch by batch over the Parquet output.

A failing suite raises `CorpusValidationError` naming the expectation, the column and example
rows, which stops the Kedro run. Batches keep memory flat on large corpora; expectations
that need the whole table (unique ids) are checked by the caller on the id column alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from m6_pipeline.corpus.reasons import Reason


class CorpusValidationError(RuntimeError):
    pass


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

    @property
    def success(self) -> bool:
        return not any(self.expectations.values())

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "batches": self.batches,
                "rows": self.rows, "unexpected_rows": self.expectations}


def validate_batches(kind: str, batches: Iterable[pd.DataFrame], *, min_text_chars: int = 15,
                     min_pixels: int = 5000) -> SuiteReport:
    """Run suite `kind` over every batch; raise on the first batch that fails."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    asset = context.data_sources.add_pandas("corpus").add_dataframe_asset(kind)
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=kind))
    for expectation in _expectations(kind, min_text_chars, min_pixels):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_def, suite=suite, name=f"{kind}_definition"))
    report = SuiteReport(kind)
    for df in batches:
        if "image" in df.columns:  # bytes are not what the suite checks; keep GE's copies small
            df = df.assign(image=df["image"].map(lambda b: None if b is None else len(b)))
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
                    f"suite {kind!r} failed: {name} on batch {report.batches}; "
                    f"unexpected values {res.result.get('partial_unexpected_list', [])[:5]} "
                    f"in records {ids}. Fix the cleaning step that produced them or the raw input.")
    return report
