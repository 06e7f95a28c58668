"""E-Commerce-IC-style examples: pairs whose description has 10 to 100 words (jieba), no
lexicon (dirty-word) match, cut to whole sentences within the target budget."""

from __future__ import annotations

import re
from pathlib import Path

import jieba
from pydantic import Field

from m6_pipeline.corpus.text_filters import LexiconMatcher, load_lexicon
from m6_pipeline.tasks.finetune.config import FinetuneJob, TaskSplits
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.records import SPLITS, PairRecord, split_of

_SENTENCE_END = re.compile(r"(?<=[。！？!?])")


class CaptionData(TaskSplits):
    min_words: int = Field(10, ge=1)
    max_words: int = Field(100, ge=1)
    max_chars: int = Field(60, ge=8, description="captions are cut to whole sentences within this")
    lexicon_path: str = "conf/base/lexicons/spam_lexicon.txt"
    max_test_images: int = Field(200, ge=1)


class CaptionJob(FinetuneJob):
    task: str = "caption"
    out_dir: Path = Path("data/06_models/finetune_caption")
    max_prompt_tokens: int = 1
    max_target_tokens: int = 64
    data: CaptionData = CaptionData()


def whole_sentences(text: str, max_chars: int) -> str:
    """The longest run of leading sentences within max_chars (the first sentence cut if it alone
    is longer)."""
    out = ""
    for sentence in (s for s in _SENTENCE_END.split(text.strip()) if s):
        if len(out) + len(sentence) > max_chars:
            break
        out += sentence
    return out or text[:max_chars]


def caption_examples(records: list[PairRecord], config: CaptionData) -> tuple[dict[str, list[TaskExample]], dict]:
    """({split: examples}, {reason: count} of the pairs left out)."""
    matcher = LexiconMatcher(load_lexicon(config.lexicon_path))
    dropped = {"too_few_words": 0, "too_many_words": 0, "lexicon": 0}
    examples: dict[str, list[TaskExample]] = {s: [] for s in SPLITS}
    for record in records:
        words = [w for w in jieba.lcut(record.text) if w.strip()]
        if len(words) < config.min_words:
            dropped["too_few_words"] += 1
            continue
        if len(words) > config.max_words:
            dropped["too_many_words"] += 1
            continue
        if matcher.first_match(record.text) is not None:
            dropped["lexicon"] += 1
            continue
        split = split_of(record.id, config.val_fraction, config.test_fraction, salt="caption")
        examples[split].append(TaskExample(
            id=record.id, prompt="", target=whole_sentences(record.text, config.max_chars),
            image_id=record.id, meta={"source": record.source, "reference": record.text},
        ))
    examples["test"] = examples["test"][: config.max_test_images]
    return examples, dropped
