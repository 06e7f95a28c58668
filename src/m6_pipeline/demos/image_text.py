"""Captioning and visual question answering on one image: the image cut into patches and
embedded by the patch extractor as the finetune pipelines do, then the finetuned M6 decodes
after [image patches | prompt [SEP]] (greedy by default, as the task evaluation scores it)."""

from __future__ import annotations

import numpy as np

from m6_pipeline.demos.models import ImageTextModel
from m6_pipeline.features.extract import embed_images
from m6_pipeline.loop_precision import autocast
from m6_pipeline.model.generation import Sampling
from m6_pipeline.tasks.finetune.decode import generate_texts
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples
from m6_pipeline.tasks.qa.prompts import Question

IMAGE_ID = "demo"


def image_features(png: bytes, m: ImageTextModel) -> np.ndarray:
    """Encoded image -> float16 patch features [n_patches, d_feature]."""
    with m.features.threads():
        return embed_images([png], [IMAGE_ID], m.extractor, m.features)[0]


def _decode(m: ImageTextModel, png: bytes, prompt: str, sampling: Sampling, seed: int) -> str:
    example = TaskExample(id=IMAGE_ID, prompt=prompt, target="?", image_id=IMAGE_ID)  # target unused
    encoded = encode_examples([example], m.tokenizer, m.card["max_prompt_tokens"], 1)
    features = {IMAGE_ID: image_features(png, m)}
    with autocast(m.precision.precision):
        return generate_texts(m.model, m.tokenizer, encoded, m.special, features,
                              m.card["max_target_tokens"], batch_size=1, sampling=sampling, seed=seed)[0]


def caption(m: ImageTextModel, png: bytes, sampling: Sampling = Sampling(), seed: int = 0) -> str:
    """The finetuned captioner's description of the image (the image alone is the prefix)."""
    return _decode(m, png, "", sampling, seed)


def answer(m: ImageTextModel, png: bytes, question: str, sampling: Sampling = Sampling(),
           seed: int = 0) -> str:
    """The finetuned VQA model's answer, prompted as in training: "问题？回答："."""
    if not question.strip():
        raise ValueError("ask a question about the image")
    return _decode(m, png, Question(IMAGE_ID, question.strip()).prompt, sampling, seed)
