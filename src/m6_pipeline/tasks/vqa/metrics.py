"""VQA accuracy: an answer is right when it equals the reference after normalisation (spaces
and punctuation removed, full-width forms folded); reported per question type and overall."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

PUNCTUATION = set("，。！？、；：,.!?;:\"'“”‘’（）()《》 ")


def normalise_answer(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if ch not in PUNCTUATION and not ch.isspace())


def accuracy_by_type(answers: list[str], references: list[str], types: list[str]) -> dict[str, dict]:
    """{type: {accuracy, n}} plus "overall"."""
    if not (len(answers) == len(references) == len(types)):
        raise ValueError(f"{len(answers)} answers, {len(references)} references, {len(types)} types")
    right: dict[str, list[bool]] = defaultdict(list)
    for answer, reference, kind in zip(answers, references, types):
        ok = normalise_answer(answer) == normalise_answer(reference)
        right[kind].append(ok)
        right["overall"].append(ok)
    return {kind: {"accuracy": sum(v) / len(v), "n": len(v)} for kind, v in right.items()}
