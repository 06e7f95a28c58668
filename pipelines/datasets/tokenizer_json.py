"""A Kedro dataset for a Hugging Face `tokenizers.Tokenizer` stored as its `tokenizer.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class TokenizerJSONDataset(AbstractDataset):
    def __init__(self, filepath: str, pretty: bool = True, metadata: dict[str, Any] | None = None):
        self._path = Path(filepath)
        self._pretty = pretty
        self.metadata = metadata

    def load(self):
        from tokenizers import Tokenizer

        if not self._path.is_file():
            raise DatasetError(
                f"no tokenizer at {self._path}: run `kedro run --pipeline=tokenizer`"
            )
        return Tokenizer.from_file(str(self._path))

    def save(self, data) -> None:
        from tokenizers import Tokenizer

        if not isinstance(data, Tokenizer):
            raise DatasetError(
                f"TokenizerJSONDataset({self._path}) saves a tokenizers.Tokenizer, got {type(data)}"
            )
        self._path.parent.mkdir(parents=True, exist_ok=True)
        data.save(str(self._path), pretty=self._pretty)

    def _exists(self) -> bool:
        return self._path.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._path)}
