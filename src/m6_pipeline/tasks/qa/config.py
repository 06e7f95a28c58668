"""Typed configuration of the `qa` and `poem` prompting pipelines."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from m6_pipeline.loop_precision import LoopPrecision, autocast
from m6_pipeline.tasks.finetune.config import _Frozen
from m6_pipeline.tasks.poem.format import PoemFormat
from m6_pipeline.torch_threads import intra_op_threads


class PromptSampling(_Frozen):
    top_k: int = Field(0, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    temperature: float = Field(1.0, gt=0)


class PromptingJob(_Frozen):
    pretrained_dir: Path | str | None = Field(
        None, description="the pretrained M6, a path or URI (None: the pretraining card's); a local copy once the stage starts"
    )
    prompts_path: Path
    sampling: PromptSampling = PromptSampling()
    max_prompt_tokens: int = Field(32, ge=1)
    seed: int = 0
    torch_threads: int | None = Field(None, ge=1)
    precision: LoopPrecision = Field(
        "fp32", description="of generation; auto: measured on this machine once per stage "
        "(m6_pipeline.tasks.precision)"
    )
    precision_choice: dict | None = Field(
        None, description="set when the stage starts: how precision was resolved "
        "(PrecisionChoice.record()), for the stage's report"
    )

    baseline_order: int = Field(3, ge=1, le=5, description="n of the baseline's token n-gram LM")

    def threads(self):
        return intra_op_threads(self.torch_threads)

    def autocast(self):
        """Run a block under the stage's (resolved) precision: bf16 autocast or fp32."""
        return autocast(self.precision)


class QAJob(PromptingJob):
    prompts_path: Path = Path("conf/base/prompts/qa_prompts.jsonl")
    max_new_tokens: int = Field(100, ge=1)


class PoemJob(PromptingJob):
    prompts_path: Path = Path("conf/base/prompts/poem_titles.txt")
    format: PoemFormat = PoemFormat()
    prompt_template: str = "{title} 正文："
