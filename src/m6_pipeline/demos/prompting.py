"""Forum QA (§4.4) and poems (§4.5) from the pretrained M6, prompted as the prompting pipelines
prompt it: "问题？回答：" for a question, "{title} 正文：" for a poem written by the constrained
search, so the chosen format holds by construction."""

from __future__ import annotations

from m6_pipeline.demos.models import TextModel
from m6_pipeline.loop_precision import autocast
from m6_pipeline.model.generation import Sampling
from m6_pipeline.tasks.poem.format import PoemFormat
from m6_pipeline.tasks.poem.generate import generate_poems
from m6_pipeline.tasks.qa.config import PromptSampling, QAJob
from m6_pipeline.tasks.qa.generate import answer_questions
from m6_pipeline.tasks.qa.prompts import Question

POEM_LINES = (4, 8, 12, 16)  # 绝句, 律诗 and longer 排律


def forum_answer(m: TextModel, question: str, sampling: PromptSampling, max_new_tokens: int = 100,
                 seed: int = 0) -> str:
    """A sampled answer to one forum question."""
    if not question.strip():
        raise ValueError("ask a question")
    job = QAJob(sampling=sampling, max_new_tokens=max_new_tokens, seed=seed, precision=m.precision.precision)
    return answer_questions(m.model, m.tokenizer, [Question("demo", question.strip())], job)[0]


def poem_format(line_chars: int, n_lines: int) -> PoemFormat:
    """Exactly `n_lines` lines of `line_chars` (5 or 7) characters; the step budget is that poem's."""
    return PoemFormat(line_chars=line_chars, n_lines=n_lines, max_lines=n_lines)


def poem(m: TextModel, title: str, fmt: PoemFormat, sampling: PromptSampling, seed: int = 0) -> str:
    """One poem after `title` in the format `fmt`."""
    if not title.strip():
        raise ValueError("give the poem a title")
    # top-k when top_k > 0, else top-p: how the poem pipeline reads `sampling`
    if sampling.top_k:
        chosen = Sampling("top_k", top_k=sampling.top_k, temperature=sampling.temperature)
    else:
        chosen = Sampling("top_p", top_p=sampling.top_p, temperature=sampling.temperature)
    with autocast(m.precision.precision):
        return generate_poems(m.model, m.tokenizer, m.special, [title.strip()], fmt, chosen, seed)[0]
