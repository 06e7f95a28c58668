"""Sampled answers after "问题？回答：" with the KV cache."""

from __future__ import annotations

from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.decode import generate_texts
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples
from m6_pipeline.tasks.qa.config import QAJob
from m6_pipeline.tasks.qa.prompts import Question


def answer_questions(model: M6Model, tokenizer: Tokenizer, questions: list[Question], job: QAJob) -> list[str]:
    special = SpecialTokens.of(tokenizer)
    budget = model.config.max_positions - job.max_prompt_tokens - 3
    if budget < 1:
        raise ValueError(f"max_prompt_tokens {job.max_prompt_tokens} leaves no room in max_positions "
                         f"{model.config.max_positions}")
    examples = [TaskExample(id=q.id, prompt=q.prompt, target="?") for q in questions]
    encoded = encode_examples(examples, tokenizer, job.max_prompt_tokens, 1)
    s = job.sampling
    sampling = Sampling("top_p", top_p=s.top_p, temperature=s.temperature) if s.top_k == 0 else \
        Sampling("top_k", top_k=s.top_k, temperature=s.temperature)
    with job.threads(), job.autocast():
        return generate_texts(model, tokenizer, encoded, special, {}, min(job.max_new_tokens, budget),
                              sampling=sampling, seed=job.seed)
