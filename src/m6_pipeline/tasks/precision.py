"""`precision: auto` for the stages that train or prompt the M6 after pretraining. A stage
resolves it once, before its loops run, at its own typical matrix product and thread count
(both variants of a task train under the one choice); the resolved job carries the choice
(`precision_choice`, PrecisionChoice.record()) into the stage's reports.

The product probed is the feed-forward's first layer, [tokens, d_model] @ [d_model, ffn_width]:
- finetuning (the tasks, text-to-image): tokens = batch_size * the stage's sequence length;
- prompting and the demos decode with the KV cache: after the prefix each step feeds one token
  per row, so tokens = the rows decoded at once. The probe times forward and backward; these
  loops run forward only, which it approximates.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from m6_pipeline.loop_precision import Probe, ffn_shape, resolve_loop_precision
from m6_pipeline.precision_choice import DEFAULT_CACHE, PrecisionChoice, probe_linear

if TYPE_CHECKING:
    from m6_pipeline.model.config import M6Config
    from m6_pipeline.tasks.finetune.config import FinetuneJob
    from m6_pipeline.tasks.qa.config import PromptingJob
    from m6_pipeline.tasks.t2i.config import T2IJob


def _pretrained_config(job, stage: str) -> M6Config:
    from m6_pipeline.model.pretrained import load_config

    if job.pretrained_dir is None:
        raise ValueError(f"{stage}: pretrained_dir is not set; the pipeline sets it from the pretrained card")
    return load_config(job.pretrained_dir)


def _with_training_precision(job, choice: PrecisionChoice):
    training = job.training.model_copy(update={"precision": choice.precision})
    return job.model_copy(update={"training": training, "precision_choice": choice.record()})


def resolve_finetune_precision(
    job: FinetuneJob, *, cache_path: Path | None = DEFAULT_CACHE, probe: Probe = probe_linear
) -> FinetuneJob:
    """`job` with training.precision resolved on this machine and the choice in
    `precision_choice`; a job that carries a choice already is returned as it is."""
    if job.precision_choice is not None:
        return job
    config = _pretrained_config(job, job.task)
    tokens = job.training.batch_size * job.sequence_length(config.n_patches)
    choice = resolve_loop_precision(job.training.precision, ffn_shape(config, tokens), job.torch_threads,
                                    cache_path=cache_path, probe=probe)
    return _with_training_precision(job, choice)


def resolve_t2i_precision(
    job: T2IJob, n_codes: int, *, cache_path: Path | None = DEFAULT_CACHE, probe: Probe = probe_linear
) -> T2IJob:
    """`job` with training.precision resolved on this machine for image codes of `n_codes`
    per image, and the choice in `precision_choice`. The stage's generation runs under it too."""
    if job.precision_choice is not None:
        return job
    config = _pretrained_config(job, "finetune_t2i")
    # a training sequence: the prompt padded to target_start, then [BOS] and the codes
    tokens = job.training.batch_size * (job.data.target_start + 1 + n_codes)
    choice = resolve_loop_precision(job.training.precision, ffn_shape(config, tokens), job.torch_threads,
                                    cache_path=cache_path, probe=probe)
    return _with_training_precision(job, choice)


def resolve_generation_precision(
    requested: str, config: M6Config, rows: int, threads: int | None = None, *,
    cache_path: Path | None = DEFAULT_CACHE, probe: Probe = probe_linear,
) -> PrecisionChoice:
    """`requested` resolved for decoding `rows` sequences at once with the KV cache."""
    return resolve_loop_precision(requested, ffn_shape(config, max(rows, 1)), threads,
                                  cache_path=cache_path, probe=probe)


def decoded_rows(job: PromptingJob) -> int:
    """Rows a prompting stage decodes at once: every poem title in one batch; the questions
    DECODE_BATCH at a time."""
    from m6_pipeline.tasks.finetune.decode import DECODE_BATCH
    from m6_pipeline.tasks.qa.config import PoemJob
    from m6_pipeline.tasks.qa.prompts import load_questions, load_titles

    if isinstance(job, PoemJob):
        return len(load_titles(job.prompts_path))
    return min(len(load_questions(job.prompts_path)), DECODE_BATCH)


def resolve_prompting_precision(
    job: PromptingJob, *, cache_path: Path | None = DEFAULT_CACHE, probe: Probe = probe_linear
) -> PromptingJob:
    """`job` with `precision` resolved on this machine (both variants generate under it) and
    the choice in `precision_choice`; a job that carries a choice already is returned as it is."""
    if job.precision_choice is not None:
        return job
    config = _pretrained_config(job, "prompting")
    choice = resolve_generation_precision(job.precision, config, decoded_rows(job), job.torch_threads,
                                          cache_path=cache_path, probe=probe)
    return job.model_copy(update={"precision": choice.precision, "precision_choice": choice.record()})
