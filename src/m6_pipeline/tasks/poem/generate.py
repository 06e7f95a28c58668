"""Writing poems after their titles (§4.5): the title is the prefix, the poem the target, and
at every step `PoemConstraint` sets the logits of format-breaking tokens to -inf before
sampling, so every row ends in a valid poem within a fixed step budget."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from m6_pipeline.model.generation import Sampling, decode_step, encode_prefix, next_token
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens, prefix_batch
from m6_pipeline.tasks.poem.format import PoemConstraint, PoemFormat
from m6_pipeline.tokenization.wordpiece import detokenize

# the prompt of the paper's Figure 11 ("见情郎 作者：唐 李白 正文：") without the author
PROMPT_TEMPLATE = "{title} 正文："


def prompt_ids(
    tokenizer: Tokenizer, title: str, template: str = PROMPT_TEMPLATE, max_prompt_tokens: int = 32
) -> list[int]:
    """The prompt's token ids, the title cut so that the whole prompt has at most
    `max_prompt_tokens` tokens (the template's own words always stay)."""
    if template.count("{title}") != 1:
        raise ValueError(f"prompt template {template!r} must contain '{{title}}' exactly once")
    before, after = (tokenizer.encode(part).ids for part in template.split("{title}"))
    room = max_prompt_tokens - len(before) - len(after)
    if room < 1:
        raise ValueError(
            f"prompt template {template!r} alone takes {len(before) + len(after)} tokens, "
            f"no room for a title within max_prompt_tokens={max_prompt_tokens}"
        )
    return before + tokenizer.encode(title).ids[:room] + after



@torch.no_grad()
def generate_poems(
    model: M6Model,
    tokenizer: Tokenizer,
    special: SpecialTokens,
    titles: list[str],
    fmt: PoemFormat = PoemFormat(),
    sampling: Sampling = Sampling(strategy="top_p", top_p=0.9),
    seed: int = 0,
    max_prompt_tokens: int = 32,
    prompt_template: str = PROMPT_TEMPLATE,
) -> list[str]:
    """One poem per title, e.g. 床前明月光，疑是地上霜。举头望明月，低头思故乡。 Sampling (greedy,
    top-k or top-p, with temperature) runs over the allowed tokens only; the cache holds the
    title, one position per step is decoded."""
    if not titles:
        return []
    constraint = PoemConstraint(tokenizer, fmt, vocab_size=model.config.vocab_size)
    if constraint.eos != special.eos:
        raise ValueError(
            f"the tokenizer's [EOS] is {constraint.eos}, the model card's {special.eos}: "
            "load the tokenizer the model was pretrained with"
        )
    device = next(model.parameters()).device
    prompts = [prompt_ids(tokenizer, t, prompt_template, max_prompt_tokens) for t in titles]
    input_ids, segment_ids, prefix_lengths = (t.to(device) for t in prefix_batch(prompts, special))
    budget = fmt.max_poem_tokens
    # [BOS] sits at position prefix_length; the last token fed is the one before [EOS]
    needed = input_ids.shape[1] + budget
    if needed > model.config.max_positions:
        raise ValueError(
            f"prompt ({input_ids.shape[1]} tokens with [SEP]) + [BOS] + a poem of up to "
            f"{budget - 1} tokens need {needed} positions, the model has "
            f"max_positions={model.config.max_positions}: shorten the titles or "
            "max_prompt_tokens, or lower fmt.max_lines / fix fmt.line_chars=5"
        )
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    logits, cache = encode_prefix(model, input_ids, segment_ids, prefix_lengths, special.bos)
    states = [constraint.start() for _ in titles]
    poems: list[list[int]] = [[] for _ in titles]
    for _ in range(budget):
        allowed = constraint.mask(states).to(device)
        token = next_token(logits.float().masked_fill(~allowed, float("-inf")), sampling, generator)
        for row, value in enumerate(token.tolist()):
            if not states[row].finished and value != constraint.eos:
                poems[row].append(value)
            states[row] = constraint.advance(states[row], value)
        if all(s.finished for s in states):
            return [detokenize(tokenizer, ids) for ids in poems]
        logits = decode_step(model, token, cache)
    raise RuntimeError(
        f"poem constraint did not end within {budget} tokens: a bug in PoemConstraint"
    )
