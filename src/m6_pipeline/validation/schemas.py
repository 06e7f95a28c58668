"""pandera models of the corpus contract (`data/03_primary`), checked at node boundaries."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

from m6_pipeline.corpus.reasons import Reason


class CleanText(pa.DataFrameModel):
    id: Series[str] = pa.Field(nullable=False)
    source: Series[str] = pa.Field(nullable=False)
    title: Series[str] = pa.Field(nullable=True)
    text: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    n_chars: Series[int] = pa.Field(ge=1)
    order: Series[int] = pa.Field(ge=0)

    class Config:
        strict = False
        coerce = True


class CleanPairs(pa.DataFrameModel):
    id: Series[str] = pa.Field(nullable=False)
    source: Series[str] = pa.Field(nullable=False)
    text: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    width: Series[int] = pa.Field(ge=1)
    height: Series[int] = pa.Field(ge=1)

    class Config:
        strict = False
        coerce = True


class Quarantine(pa.DataFrameModel):
    id: Series[str] = pa.Field(nullable=False)
    source: Series[str] = pa.Field(nullable=False)
    modality: Series[str] = pa.Field(isin=["text", "pairs"])
    reason: Series[str] = pa.Field(isin=[str(r) for r in Reason])
    detail: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = True
