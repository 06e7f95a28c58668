"""Nodes of the prompting pipelines `qa` (§4.4) and `poem` (§4.5): the pretrained M6 is
prompted without finetuning, beside the baseline, a token n-gram LM trained on the same
pretraining text (tasks/ngram_baseline.py); outputs go to the human-evaluation batches,
automatic measures to the report."""

from __future__ import annotations

import logging

from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.config import VARIANTS
from m6_pipeline.tasks.finetune.examples import TaskExample, encode_examples
from m6_pipeline.tasks.finetune.models import load_pretrained, pretrained_model_dir
from m6_pipeline.tasks.ngram_baseline import NgramLM, sample, train_on_shards
from m6_pipeline.tasks.poem.format import PoemConstraint
from m6_pipeline.tasks.poem.generate import prompt_ids
from m6_pipeline.tasks.poem.format import check_poem
from m6_pipeline.tasks.poem.generate import generate_poems
from m6_pipeline.tasks.precision import resolve_prompting_precision
from m6_pipeline.tasks.qa.config import PoemJob, PromptingJob, QAJob
from m6_pipeline.tasks.qa.evaluate import generation_measures, reference_nll
from m6_pipeline.tasks.qa.generate import answer_questions
from m6_pipeline.tasks.qa.prompts import load_questions, load_titles
from m6_pipeline.tokenization.wordpiece import detokenize

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


def _pretrained(job: PromptingJob):
    return load_pretrained(job.pretrained_dir, dropout=0.0)[0].eval()


def _sampling(job: PromptingJob) -> Sampling:
    s = job.sampling
    return Sampling("top_p", top_p=s.top_p, temperature=s.temperature) if s.top_k == 0 else \
        Sampling("top_k", top_k=s.top_k, temperature=s.temperature)


def train_baseline(job: PromptingJob, tokenizer: Tokenizer, shards_summary: dict) -> NgramLM:
    """The baseline: a token n-gram LM on the text shards M6 pretrained on."""
    special = SpecialTokens.of(tokenizer)
    lm = train_on_shards(shards_summary, tokenizer.get_vocab_size(), special.bos, special.eos, job.baseline_order)
    log.info("baseline: a %d-gram LM on %d pretraining tokens", lm.order, lm.n_train_tokens)
    return lm


def _baseline_record(lm: NgramLM) -> dict:
    return {"kind": f"token {lm.order}-gram LM, interpolated Kneser-Ney", "trained_on": "the pretraining text shards",
            "n_train_tokens": lm.n_train_tokens}


def answer(job: QAJob, tokenizer: Tokenizer, corpus_lm, baseline: NgramLM) -> tuple[dict, list[dict]]:
    questions = load_questions(job.prompts_path)
    model = _pretrained(job)
    budget = min(job.max_new_tokens, model.config.max_positions - job.max_prompt_tokens - 3)
    contexts = [tokenizer.encode(q.prompt, add_special_tokens=False).ids[: job.max_prompt_tokens] for q in questions]
    answers = {"pretrained": answer_questions(model, tokenizer, questions, job),
               "baseline": [detokenize(tokenizer, ids) for ids in sample(baseline, contexts, budget, _sampling(job), job.seed)]}
    with_human = [q for q in questions if q.human_answer]
    metrics = {v: generation_measures(answers[v], corpus_lm) for v in VARIANTS}
    if with_human:
        max_target = model.config.max_positions - job.max_prompt_tokens - 3
        with job.threads():
            metrics["pretrained"]["human_answer_nll"] = reference_nll(
                model, tokenizer, [q.prompt for q in with_human], [q.human_answer for q in with_human],
                job.max_prompt_tokens, max_target)
        # the same tokens scored: the prompt as context, the answer and its [EOS]
        encoded = encode_examples([TaskExample(id=q.id, prompt=q.prompt, target=q.human_answer) for q in with_human],
                                  tokenizer, job.max_prompt_tokens, max_target)
        metrics["baseline"]["human_answer_nll"] = baseline.nll([e.prompt_ids for e in encoded], [e.target_ids for e in encoded])
    metrics["human"] = generation_measures([q.human_answer for q in with_human], corpus_lm) if with_human else None
    rows = [{"id": q.id, "prompt": q.prompt, "reference": q.human_answer,
             "outputs": {v: answers[v][k] for v in VARIANTS}} for k, q in enumerate(questions)]
    log.info("qa: %s", metrics)
    return {"measures": metrics, "baseline": _baseline_record(baseline), "n_questions": len(questions),
            "n_with_human_answer": len(with_human), "precision": job.precision_choice}, rows


def write_poems(job: PoemJob, tokenizer: Tokenizer, corpus_lm, baseline: NgramLM) -> tuple[dict, list[dict]]:
    titles = load_titles(job.prompts_path)
    special = SpecialTokens.of(tokenizer)
    sampling = _sampling(job)
    with job.threads(), job.autocast():
        pretrained = generate_poems(_pretrained(job), tokenizer, special, titles, job.format, sampling, job.seed,
                                    job.max_prompt_tokens, job.prompt_template)
    # the baseline continues the same prompt under the same format constraint
    constraint = PoemConstraint(tokenizer, job.format, vocab_size=tokenizer.get_vocab_size())
    contexts = [prompt_ids(tokenizer, t, job.prompt_template, job.max_prompt_tokens) for t in titles]
    poems = {"pretrained": pretrained,
             "baseline": [detokenize(tokenizer, ids) for ids in
                          sample(baseline, contexts, job.format.max_poem_tokens, sampling, job.seed, constraint)]}
    metrics = {}
    for variant in VARIANTS:
        violations = [check_poem(p, job.format) for p in poems[variant]]
        metrics[variant] = {
            "validity": sum(not v for v in violations) / len(violations),
            "violations": [{"title": t, "violations": v} for t, v in zip(titles, violations) if v],
            **generation_measures([p.replace("，", "").replace("。", "") for p in poems[variant]], corpus_lm),
        }
    rows = [{"id": f"poem-{k:03d}", "prompt": job.prompt_template.format(title=t), "title": t,
             "outputs": {v: poems[v][k] for v in VARIANTS}} for k, t in enumerate(titles)]
    log.info("poem: validity %s", {v: metrics[v]["validity"] for v in VARIANTS})
    return {"measures": metrics, "baseline": _baseline_record(baseline), "n_titles": len(titles),
            "format": job.format.model_dump(), "precision": job.precision_choice,
            # both generate under the format mask: validity 1.0 is by construction, not a skill
            "validity_by_construction": True}, rows
