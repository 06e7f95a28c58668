"""Writing an image's codes after a Chinese prompt (§4.1): top-k / top-p sampling over the code
output layer with the KV cache, then the VQGAN decoder.

Beyond the paper, two options that the text-to-image literature since relies on:
- classifier-free guidance (Ho & Salimans 2021; used by Make-A-Scene/Parti for autoregressive
  codes): the conditional and the unconditional (empty prompt) sequences run as one batch and
  the sampled logits are u + s (c - u);
- reranking: of several samples, keep the one with the highest pointwise mutual information of
  text and image, sum_t log p(code_t | text, <t) - log p(code_t | <t), from the same two passes.
  It asks nothing of the evaluation's attribute classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from m6_pipeline.model.generation import decode_step, encode_prefix, filter_logits, full_sequence_logits
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens, prefix_batch
from m6_pipeline.tasks.t2i.config import T2ISampling


@dataclass(frozen=True)
class GeneratedCodes:
    codes: torch.Tensor  # [n_prompts, samples, n_codes] long
    pmi: torch.Tensor | None  # [n_prompts, samples] nats; None without the unconditional pass
    chosen: torch.Tensor | None  # [n_prompts] index of the reranked sample



@torch.no_grad()
def generate_codes(
    model: M6Model,
    prompts: list[list[int]],
    n_codes: int,
    special: SpecialTokens,
    sampling: T2ISampling,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    target_start: int | None = None,
) -> GeneratedCodes:
    """`sampling.samples_per_prompt` code sequences for each prompt (token ids, no specials).
    `target_start`: the position of [BOS] the model was finetuned with (None: right after each
    prompt). `use_cache=False` re-encodes the whole sequence each step (the benchmark's peer)."""
    if model.code_head is None:
        raise ValueError("this M6 has no image codes: finetune it with the finetune_t2i pipeline")
    longest_prefix = max(len(p) for p in prompts) + 1
    if target_start is not None and longest_prefix > target_start:
        raise ValueError(
            f"a prompt of {longest_prefix - 1} tokens does not fit before position {target_start}; "
            "truncate prompts to the model's max_prompt_tokens"
        )
    last = (target_start if target_start is not None else longest_prefix) + n_codes
    if last >= model.config.max_positions:
        raise ValueError(
            f"prompt + [SEP] + [BOS] + {n_codes} codes reach position {last}, beyond the model's "
            f"max_positions={model.config.max_positions}; shorten data.max_prompt_tokens"
        )
    model.eval()
    k = sampling.samples_per_prompt
    repeated = [p for p in prompts for _ in range(k)]
    guided = sampling.guidance_scale != 1.0 or sampling.rerank
    batch = len(repeated)
    rows = repeated + ([[]] * batch if guided else [])  # conditional, then unconditional
    input_ids, segment_ids, prefix_lengths = prefix_batch(rows, special)
    offset = model.config.code_offset

    if use_cache:
        logits, state = encode_prefix(
            model, input_ids, segment_ids, prefix_lengths, special.bos, head="code", target_start=target_start
        )
    else:
        generated = torch.full((len(rows), 1), special.bos, dtype=torch.long)
        logits = full_sequence_logits(
            model, input_ids, segment_ids, prefix_lengths, generated, head="code", target_start=target_start
        )
    codes = torch.empty(batch, n_codes, dtype=torch.long)
    pmi = torch.zeros(batch, dtype=torch.float64)
    for t in range(n_codes):
        logits = logits.float()
        conditional = logits[:batch]
        step_logits = conditional
        if guided:
            unconditional = logits[batch:]
            scale = sampling.guidance_scale
            step_logits = unconditional + scale * (conditional - unconditional)
        step_logits = filter_logits(step_logits / sampling.temperature, sampling.top_k, sampling.top_p)
        token = torch.multinomial(step_logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
        codes[:, t] = token
        if guided:
            chosen = token[:, None]
            pmi += (
                conditional.log_softmax(-1).gather(1, chosen) - unconditional.log_softmax(-1).gather(1, chosen)
            ).squeeze(1).double()
        if t == n_codes - 1:
            break
        fed = torch.cat([token, token]) if guided else token
        if use_cache:
            logits = decode_step(model, fed + offset, state)
        else:
            generated = torch.cat([generated, (fed + offset)[:, None]], dim=1)
            logits = full_sequence_logits(
                model, input_ids, segment_ids, prefix_lengths, generated, head="code",
                target_start=target_start,
            )
    codes = codes.reshape(len(prompts), k, n_codes)
    if not guided:
        return GeneratedCodes(codes, None, None)
    pmi = pmi.reshape(len(prompts), k)
    return GeneratedCodes(codes, pmi, pmi.argmax(dim=1) if sampling.rerank else None)


def final_codes(generated: GeneratedCodes) -> torch.Tensor:
    """[n_prompts, samples, n_codes] -> the codes to show: the reranked sample of each prompt
    ([n_prompts, 1, n_codes]) when reranking, else all samples."""
    if generated.chosen is None:
        return generated.codes
    index = generated.chosen[:, None, None].expand(-1, 1, generated.codes.shape[-1])
    return generated.codes.gather(1, index)
