"""Nodes of the prompting pipelines `qa` (§4.4) and `poem` (§4.5): the pretrained M6 and the
non-pretrained baseline (the same architecture at its initialisation) are prompted without
finetuning; outputs go to the human-evaluation batches, automatic measures to the report."""

from __future__ import annotations

import logging

from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.config import VARIANTS
from m6_pipeline.tasks.finetune.models import initial_model, pretrained_model_dir
from m6_pipeline.tasks.poem.format import check_poem
from m6_pipeline.tasks.poem.generate import generate_poems
from m6_pipeline.tasks.precision import resolve_prompting_precision
from m6_pipeline.tasks.qa.config import PoemJob, PromptingJob, QAJob
from m6_pipeline.tasks.qa.evaluate import generation_measures, reference_nll
from m6_pipeline.tasks.qa.generate import answer_questions
from m6_pipeline.tasks.qa.prompts import load_questions, load_titles

log = logging.getLogger(__name__)


def parse_job(kind: str):
    job_type = {"qa": QAJob, "poem": PoemJob}[kind]

    def parse(params: dict, pretrain_model_card: dict) -> PromptingJob:
        job = job_type.model_validate(params)
        job = job.model_copy(update={"pretrained_dir": pretrained_model_dir(job.pretrained_dir, pretrain_model_card)})
        # `precision: auto` resolved here, once for the stage: both variants generate under it
        return resolve_prompting_precision(job)

    parse.__name__ = f"parse_{kind}_job"
    return parse


def _models(job: PromptingJob) -> dict:
    return {v: initial_model(job.pretrained_dir, v, dropout=0.0, seed=job.seed)[0].eval() for v in VARIANTS}


def answer(job: QAJob, tokenizer: Tokenizer, corpus_lm) -> tuple[dict, list[dict]]:
    questions = load_questions(job.prompts_path)
    models = _models(job)
    answers = {v: answer_questions(m, tokenizer, questions, job) for v, m in models.items()}
    with_human = [q for q in questions if q.human_answer]
    metrics = {}
    for variant, model in models.items():
        metrics[variant] = generation_measures(answers[variant], corpus_lm)
        if with_human:
            with job.threads():
                metrics[variant]["human_answer_nll"] = reference_nll(
                    model, tokenizer, [q.prompt for q in with_human], [q.human_answer for q in with_human],
                    job.max_prompt_tokens, model.config.max_positions - job.max_prompt_tokens - 3,
                )
    metrics["human"] = generation_measures([q.human_answer for q in with_human], corpus_lm) if with_human else None
    rows = [{"id": q.id, "prompt": q.prompt, "reference": q.human_answer,
             "outputs": {v: answers[v][k] for v in VARIANTS}} for k, q in enumerate(questions)]
    log.info("qa: %s", metrics)
    return {"measures": metrics, "n_questions": len(questions), "n_with_human_answer": len(with_human),
            "precision": job.precision_choice}, rows


def write_poems(job: PoemJob, tokenizer: Tokenizer, corpus_lm) -> tuple[dict, list[dict]]:
    titles = load_titles(job.prompts_path)
    special = SpecialTokens.of(tokenizer)
    s = job.sampling
    sampling = Sampling("top_p", top_p=s.top_p, temperature=s.temperature) if s.top_k == 0 else \
        Sampling("top_k", top_k=s.top_k, temperature=s.temperature)
    poems, metrics = {}, {}
    for variant, model in _models(job).items():
        with job.threads(), job.autocast():
            poems[variant] = generate_poems(model, tokenizer, special, titles, job.format, sampling, job.seed,
                                            job.max_prompt_tokens, job.prompt_template)
        violations = [check_poem(p, job.format) for p in poems[variant]]
        metrics[variant] = {
            "validity": sum(not v for v in violations) / len(violations),
            "violations": [{"title": t, "violations": v} for t, v in zip(titles, violations) if v],
            **generation_measures([p.replace("，", "").replace("。", "") for p in poems[variant]], corpus_lm),
        }
    rows = [{"id": f"poem-{k:03d}", "prompt": job.prompt_template.format(title=t), "title": t,
             "outputs": {v: poems[v][k] for v in VARIANTS}} for k, t in enumerate(titles)]
    log.info("poem: validity %s", {v: metrics[v]["validity"] for v in VARIANTS})
    return {"measures": metrics, "n_titles": len(titles), "format": job.format.model_dump(),
            "precision": job.precision_choice}, rows
