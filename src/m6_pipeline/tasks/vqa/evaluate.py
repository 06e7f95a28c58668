"""VQA metrics for the finetuned variants, and the zero-shot answers of the pretrained model
(Figure 8: the pretrained M6 prompted with "问题？回答：", no finetuning)."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.pretrained import load_pretrained
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.decode import generate_texts
from m6_pipeline.tasks.finetune.evaluate import generated_answers, prediction_rows
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples
from m6_pipeline.tasks.vqa.config import VQAJob
from m6_pipeline.tasks.vqa.metrics import accuracy_by_type
from m6_pipeline.tasks.vqa.questions import prompt


def evaluate_vqa(
    job: VQAJob, models: dict[str, M6Model], splits: dict[str, list[TaskExample]], tokenizer: Tokenizer,
    features: dict[str, np.ndarray],
) -> tuple[dict, list[dict]]:
    """Accuracy per question type on the test split, and the pretrained model's zero-shot
    answers about four single-product test images."""
    test = splits["test"]
    answers = generated_answers(job, models, test, tokenizer, features)
    references, types = [e.target for e in test], [e.meta["type"] for e in test]
    metrics = {variant: accuracy_by_type(a, references, types) for variant, a in answers.items()}
    images = sorted({e.image_id for e in test if not e.image_id.startswith("scene/")})[:4]
    pretrained, _ = load_pretrained(job.pretrained_dir)
    zero_shot = zero_shot_answers(job, pretrained, images, tokenizer, features)
    return {"accuracy": metrics, "n_test": len(test), "zero_shot": zero_shot}, prediction_rows(test, answers)


def zero_shot_answers(
    job: VQAJob, pretrained: M6Model, image_ids: list[str], tokenizer: Tokenizer, features: dict[str, np.ndarray],
    max_new_tokens: int = 32,
) -> list[dict]:
    """The pretrained model's answers to data.zero_shot_questions about a few test images."""
    special = SpecialTokens.of(tokenizer)
    examples = [TaskExample(id=f"{i}#{q}", prompt=prompt(q.rstrip("？") + "？"), target="?", image_id=i)
                for i in image_ids for q in job.data.zero_shot_questions]
    encoded = encode_examples(examples, tokenizer, job.max_prompt_tokens, 1)
    with job.threads():
        texts = generate_texts(pretrained, tokenizer, encoded, special, features, max_new_tokens,
                               sampling=Sampling("top_p", top_p=0.9), seed=job.training.seed)
    return [{"image_id": e.image_id, "prompt": e.prompt, "answer": t} for e, t in zip(examples, texts)]
