"""Queries and balanced positive / negative examples. A query joins the product's attribute
terms (size, colour, pattern, category: what the paper's NER extracts from titles) with
keywords of its description (jieba TF-IDF), 6 to 12 words. A negative pairs the image with
the query of another product that differs in colour, category or pattern, so a negative can
never be a positive in disguise."""

from __future__ import annotations

from pathlib import Path

import jieba.analyse
import numpy as np
from pydantic import Field

from m6_pipeline.tasks.finetune.config import FinetuneJob, _Frozen
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.records import SPLITS, PairRecord, split_of

MATCH, MISMATCH = "是", "否"
DISTINGUISHING = ("colour", "category", "pattern")
_KEYWORD_POS = ("n", "a", "an", "vn", "nz")


class ITMData(_Frozen):
    min_words: int = Field(6, ge=1)
    max_words: int = Field(12, ge=1)
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    max_test_pairs: int = Field(600, ge=2)
    seed: int = 0


class ITMJob(FinetuneJob):
    task: str = "itm"
    out_dir: Path = Path("data/06_models/finetune_itm")
    max_prompt_tokens: int = 48
    max_target_tokens: int = 1
    data: ITMData = ITMData()


def build_query(record: PairRecord, min_words: int, max_words: int, rng: np.random.Generator) -> list[str]:
    """The query's words: the attribute terms in a random order, then description keywords up
    to a length drawn from [min_words, max_words] (fewer if the text has fewer keywords)."""
    a = record.attributes
    terms = [a["size"], a["colour"], a["pattern"], a["category"]]
    keywords = [w for w in jieba.analyse.extract_tags(record.text, topK=max_words * 2, allowPOS=_KEYWORD_POS)
                if not any(w in t or t in w for t in terms)]
    length = int(rng.integers(min_words, max_words + 1))
    extra = keywords[: max(0, length - len(terms))]
    order = rng.permutation(len(terms))
    return [terms[i] for i in order][:2] + extra + [terms[i] for i in order][2:]


def query_prompt(query: list[str]) -> str:
    return f"{''.join(query)}。图文是否匹配？回答："


def differs(a: PairRecord, b: PairRecord) -> bool:
    return any(a.attributes[k] != b.attributes[k] for k in DISTINGUISHING)


def negative_partner(index: int, records: list[PairRecord], rng: np.random.Generator, tries: int = 100) -> int:
    """Another record whose attributes differ from records[index]'s (never index itself)."""
    if len(records) < 2:
        raise ValueError("negative sampling needs at least two products")
    for _ in range(tries):
        j = int(rng.integers(len(records) - 1))
        j += j >= index  # uniform over the others
        if differs(records[index], records[j]):
            return j
    others = [j for j in range(len(records)) if j != index and differs(records[index], records[j])]
    if not others:
        raise ValueError(f"no product differs from {records[index].id} in {DISTINGUISHING}")
    return others[int(rng.integers(len(others)))]


def itm_examples(records: list[PairRecord], config: ITMData) -> dict[str, list[TaskExample]]:
    """{split: examples}: every product once as a positive and once as a negative (with the
    query of a product of the same split)."""
    rng = np.random.default_rng(config.seed)
    labelled = [r for r in records if r.attributes is not None]
    out: dict[str, list[TaskExample]] = {}
    for split in SPLITS:
        products = [r for r in labelled if split_of(r.id, config.val_fraction, config.test_fraction, "itm") == split]
        if len(products) < 2:
            raise ValueError(f"ITM {split} split has {len(products)} labelled products; need at least 2")
        queries = [build_query(r, config.min_words, config.max_words, rng) for r in products]
        examples = []
        for i, record in enumerate(products):
            j = negative_partner(i, products, rng)
            for query, label, other in ((queries[i], MATCH, None), (queries[j], MISMATCH, products[j].id)):
                examples.append(TaskExample(
                    id=f"{record.id}#{'pos' if other is None else 'neg'}", prompt=query_prompt(query),
                    target=label, image_id=record.id,
                    meta={"query": " ".join(query), "label": int(label == MATCH), "query_of": other or record.id},
                ))
        order = rng.permutation(len(examples))
        out[split] = [examples[k] for k in order]
    out["test"] = out["test"][: config.max_test_pairs]
    return out
