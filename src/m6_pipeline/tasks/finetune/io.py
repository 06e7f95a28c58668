"""Task examples on disk (JSON, readable in the catalog) and back."""

from __future__ import annotations

from dataclasses import asdict

from m6_pipeline.tasks.finetune.examples import TaskExample


def examples_to_json(splits: dict[str, list[TaskExample]], **info) -> dict:
    return {"counts": {k: len(v) for k, v in splits.items()}, **info,
            "splits": {k: [asdict(e) for e in v] for k, v in splits.items()}}


def examples_from_json(data: dict) -> dict[str, list[TaskExample]]:
    try:
        return {k: [TaskExample(**row) for row in rows] for k, rows in data["splits"].items()}
    except (KeyError, TypeError) as error:
        raise ValueError(f"task examples JSON without a valid `splits` mapping ({error}); rebuild them") from error
