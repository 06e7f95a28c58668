"""Queries and balanced positive / negative examples. A query joins the product's attribute
terms (size, colour, pattern, category: what the paper's NER extracts from titles) with
keywords of its description (jieba TF-IDF), 6 to 12 words. A negative pairs the image with
the query of another product that differs in colour, category or pattern, so a negative can
never be a positive in disguise.

The classifier is generative: finetuning teaches p(query | image) and p(query) (examples with
and without the image), and a pair matches when the image raises the query's likelihood,
log p(q | image) - log p(q) > t, with t chosen on the calibration pairs (validation products).
Pretraining's image-to-text and language-modelling tasks are exactly these two."""

from __future__ import annotations

from pathlib import Path

import jieba.analyse
import numpy as np
from pydantic import Field

from m6_pipeline.tasks.finetune.config import FinetuneJob, TaskSplits
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.records import SPLITS, PairRecord, split_of

DISTINGUISHING = ("colour", "category", "pattern")
_KEYWORD_POS = ("n", "a", "an", "vn", "nz")


class ITMData(TaskSplits):
    min_words: int = Field(6, ge=1)
    max_words: int = Field(12, ge=1)
    max_test_pairs: int = Field(600, ge=2)
    seed: int = 0


class ITMJob(FinetuneJob):
    task: str = "itm"
    out_dir: Path = Path("data/06_models/finetune_itm")
    max_prompt_tokens: int = 1
    max_target_tokens: int = 40
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


def query_text(query: list[str]) -> str:
    return "".join(query)


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


def labelled_pairs(products: list[PairRecord], queries: list[list[str]], rng: np.random.Generator) -> list[TaskExample]:
    """Every product once with its own query (label 1) and once with a substituted one (label 0)."""
    examples = []
    for i, record in enumerate(products):
        j = negative_partner(i, products, rng)
        for query, label, other in ((queries[i], 1, record.id), (queries[j], 0, products[j].id)):
            examples.append(TaskExample(
                id=f"{record.id}#{'pos' if label else 'neg'}", prompt="", target=query_text(query),
                image_id=record.id, meta={"query": " ".join(query), "label": label, "query_of": other},
            ))
    return [examples[k] for k in rng.permutation(len(examples))]


def generative_examples(products: list[PairRecord], queries: list[list[str]]) -> list[TaskExample]:
    """Each product's query after its image, and alone (the unconditional model)."""
    out = []
    for record, query in zip(products, queries):
        out.append(TaskExample(id=f"{record.id}#image", prompt="", target=query_text(query), image_id=record.id))
        out.append(TaskExample(id=f"{record.id}#text", prompt="", target=query_text(query), image_id=None))
    return out


def itm_examples(records: list[PairRecord], config: ITMData) -> dict[str, list[TaskExample]]:
    """{train, val: generative examples; calibration, test: labelled pairs}. Calibration pairs
    are made of the validation products; every split's negatives come from its own products."""
    rng = np.random.default_rng(config.seed)
    labelled = [r for r in records if r.attributes is not None]
    out: dict[str, list[TaskExample]] = {}
    for split in SPLITS:
        products = [r for r in labelled if split_of(r.id, config.val_fraction, config.test_fraction, "itm") == split]
        if len(products) < 2:
            raise ValueError(f"ITM {split} split has {len(products)} labelled products; need at least 2")
        queries = [build_query(r, config.min_words, config.max_words, rng) for r in products]
        if split == "test":
            out["test"] = labelled_pairs(products, queries, rng)[: config.max_test_pairs]
        else:
            out[split] = generative_examples(products, queries)
        if split == "val":
            out["calibration"] = labelled_pairs(products, queries, rng)
    return out
