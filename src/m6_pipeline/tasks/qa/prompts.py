"""Prompt files: QA questions as JSON Lines (`id`, `question`, optional `human_answer`), poem
titles one per line. A malformed row is an error naming the file and line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ANSWER_CUE = "回答："


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    human_answer: str | None = None

    @property
    def prompt(self) -> str:
        return self.question.rstrip("？?") + "？" + ANSWER_CUE


def load_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"QA prompts {path} not found: set qa.prompts_path")
    out, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error})") from error
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{path}:{number}: needs a non-empty `question`")
        answer = row.get("human_answer")
        if answer is not None and (not isinstance(answer, str) or not answer.strip()):
            raise ValueError(f"{path}:{number}: `human_answer` must be a non-empty string when given")
        qid = str(row.get("id", f"{path.stem}-{number}"))
        if qid in seen:
            raise ValueError(f"{path}:{number}: duplicate id {qid!r}")
        seen.add(qid)
        out.append(Question(qid, question.strip(), answer.strip() if answer else None))
    if not out:
        raise ValueError(f"{path}: no questions")
    return out


def load_titles(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"poem titles {path} not found: set poem.prompts_path")
    titles = [t.strip() for t in path.read_text(encoding="utf-8").splitlines()]
    titles = [t for t in titles if t and not t.startswith("#")]
    if not titles:
        raise ValueError(f"{path}: no titles")
    return titles
