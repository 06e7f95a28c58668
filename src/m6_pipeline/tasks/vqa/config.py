"""Typed configuration of the `finetune_vqa` pipeline (`parameters_finetune_vqa.yml`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from m6_pipeline.tasks.finetune.config import FinetuneJob, TaskSplits, _Frozen


class SceneCounts(_Frozen):
    train: int = Field(1500, ge=0)
    val: int = Field(100, ge=0)
    test: int = Field(300, ge=0)


class VQAData(TaskSplits):
    scenes: SceneCounts = SceneCounts()
    canvas: int = Field(128, ge=16, description="side of a scene image before the patch extractor")
    max_test_questions: int = Field(600, ge=1)
    fmiqa_train: Path | None = Field(None, description="FMIQA-format file to finetune on instead")
    fmiqa_test: Path | None = Field(None, description="FMIQA-format file to evaluate on instead")
    zero_shot_questions: list[str] = Field(
        default_factory=lambda: ["这是什么？", "这件商品是什么颜色的？", "这件商品适合什么场合？"],
        description="asked of the pretrained model without finetuning, as Figure 8 does",
    )
    seed: int = 0


class VQAJob(FinetuneJob):
    task: str = "vqa"
    out_dir: Path = Path("data/06_models/finetune_vqa")
    max_prompt_tokens: int = 24
    max_target_tokens: int = 8
    data: VQAData = VQAData()
