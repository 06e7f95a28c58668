"""Questions about catalogue images, with the answers their texts state. Single products give
detection (what is it), colour and pattern questions; scenes of two or three products side by
side give number (how many) and relation (which is on the left / right) questions. Prompts use
the paper's format (Figure 8): "问题？回答："."""

from __future__ import annotations

import numpy as np

from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.records import PairRecord

ANSWER_CUE = "回答："
COUNT_WORDS = {1: "一件", 2: "两件", 3: "三件"}
QUESTION_TYPES = ("detection", "colour", "pattern", "number", "relation")

SINGLE = {
    "detection": ("这是什么商品？", "category"),
    "colour": ("这件商品是什么颜色的？", "colour"),
    "pattern": ("这件商品是什么图案的？", "pattern"),
}
RELATION = {
    ("左边", "category"): "左边的是什么商品？",
    ("右边", "category"): "右边的是什么商品？",
    ("左边", "colour"): "左边的商品是什么颜色的？",
    ("右边", "colour"): "右边的商品是什么颜色的？",
}


def prompt(question: str) -> str:
    return f"{question}{ANSWER_CUE}"


def single_product_questions(record: PairRecord) -> list[TaskExample]:
    """Detection, colour and pattern questions on one product's own image."""
    if record.attributes is None:
        return []
    return [
        TaskExample(
            id=f"{record.id}#{kind}", prompt=prompt(question), target=record.attributes[attribute],
            image_id=record.id, meta={"type": kind, "question": question},
        )
        for kind, (question, attribute) in SINGLE.items()
    ]


def scene_questions(
    scene_id: str, products: list[PairRecord], rng: np.random.Generator, canvas: int = 128
) -> list[TaskExample]:
    """A number question, and for two products a relation question whose answer tells the two
    apart (the left and right products differ in the attribute asked). The meta records the
    products left to right and the canvas side, from which `scenes.compose` redraws the image."""
    scene = {"products": [p.id for p in products], "canvas": canvas}
    out = [TaskExample(
        id=f"{scene_id}#number", prompt=prompt("图中有几件商品？"), target=COUNT_WORDS[len(products)],
        image_id=scene_id, meta={"type": "number", "question": "图中有几件商品？", "scene": scene},
    )]
    if len(products) == 2:
        left, right = products
        options = [(side, attribute) for side, attribute in RELATION
                   if left.attributes[attribute] != right.attributes[attribute]]
        if options:
            side, attribute = options[int(rng.integers(len(options)))]
            product = left if side == "左边" else right
            question = RELATION[(side, attribute)]
            out.append(TaskExample(
                id=f"{scene_id}#relation", prompt=prompt(question), target=product.attributes[attribute],
                image_id=scene_id, meta={"type": "relation", "question": question, "scene": scene},
            ))
    return out
