"""A loader for FMIQA-format files (Gao et al. 2015, the Chinese VQA benchmark of Table 5).

Accepted: a JSON array or JSON Lines of objects with an image (`image_id` or `image`), a
question and an answer, either flat (`question`, `answer`) or as FMIQA releases them
(`Question: {"Chinese": ...}`, `Answer: {"Chinese": ...}`), with optional `question_id` and
`type`. A malformed row is an error naming the file and the row, never skipped silently."""

from __future__ import annotations

import json
from pathlib import Path

from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.vqa.questions import prompt


class FMIQAFormatError(ValueError):
    pass


def _chinese(value, field: str, where: str) -> str:
    if isinstance(value, dict):
        value = value.get("Chinese", value.get("chinese"))
    if not isinstance(value, str) or not value.strip():
        raise FMIQAFormatError(f"{where}: `{field}` must be a non-empty string or {{'Chinese': ...}}, got {value!r}")
    return value.strip()


def _rows(path: Path) -> list[tuple[str, object]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return [(f"{path}[{i}]", row) for i, row in enumerate(json.loads(text))]
        except json.JSONDecodeError as error:
            raise FMIQAFormatError(f"{path}: not valid JSON ({error})") from error
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise FMIQAFormatError(f"{path}:{number}: not valid JSON ({error})") from error
    return rows


def load_fmiqa(path: str | Path) -> list[TaskExample]:
    """Examples whose image_id is the path of the row's image (resolved against the file)."""
    path = Path(path)
    examples = []
    for where, row in _rows(path):
        if not isinstance(row, dict):
            raise FMIQAFormatError(f"{where}: a row must be an object, got {type(row).__name__}")
        image = row.get("image_id", row.get("image"))
        if image is None or str(image).strip() == "":
            raise FMIQAFormatError(f"{where}: no `image_id` or `image`")
        question = _chinese(row.get("Question", row.get("question")), "question", where)
        answer = _chinese(row.get("Answer", row.get("answer")), "answer", where)
        question_id = str(row.get("question_id", where))
        examples.append(TaskExample(
            id=question_id, prompt=prompt(question.rstrip("？?") + "？"), target=answer,
            image_id=str(path.parent / str(image)), meta={"type": str(row.get("type", "fmiqa")), "question": question},
        ))
    if not examples:
        raise FMIQAFormatError(f"{path}: no questions")
    return examples
