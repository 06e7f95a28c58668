"""Automatic measures for free generation, where no single right answer exists: the model's
negative log-likelihood of human answers (nats per token, lower is better), the fluency of
its own outputs by the corpus stage's character LM (perplexity, lower is better) and their
diversity (distinct-2)."""

from __future__ import annotations

import numpy as np

from tokenizers import Tokenizer

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.evaluation.text_metrics import distinct_n
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.finetune.examples import TaskExample, batch_of, encode_examples
from m6_pipeline.tasks.finetune.trainer import mean_loss


def reference_nll(
    model: M6Model, tokenizer: Tokenizer, prompts: list[str], references: list[str], max_prompt_tokens: int,
    max_target_tokens: int,
) -> float:
    """Mean cross entropy (nats per token) of `references` after their prompts."""
    special = SpecialTokens.of(tokenizer)
    examples = [TaskExample(id=str(i), prompt=p, target=r) for i, (p, r) in enumerate(zip(prompts, references))]
    encoded = encode_examples(examples, tokenizer, max_prompt_tokens, max_target_tokens)
    batches = [batch_of(encoded[i : i + 32], special, {}) for i in range(0, len(encoded), 32)]
    return mean_loss(model, batches, "fp32")


def corpus_lm_perplexity(lm, texts: list[str]) -> float:
    """Median per-character perplexity of non-empty texts under the corpus character LM."""
    texts = [t for t in texts if t]
    if not texts:
        return float("nan")
    return float(np.nanmedian(lm.perplexity(CodepointBatch.from_strings(texts))))


def generation_measures(texts: list[str], lm) -> dict[str, float]:
    return {"corpus_lm_perplexity": corpus_lm_perplexity(lm, texts), "distinct_2": distinct_n(texts, 2),
            "mean_chars": float(np.mean([len(t) for t in texts]))}


