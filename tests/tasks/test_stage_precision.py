"""`precision: auto` in the stages after pretraining: resolved once per stage at the stage's shape
from an injected probe result (fp32 where bf16 measured slower, bf16 where it measured faster),
both variants trained under it, and the choice in the stage's reports."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_model

from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.pretrained import export_pretrained
from m6_pipeline.precision_choice import ProbeResult
from m6_pipeline.tasks.finetune.config import FinetuneJob, FinetuneTraining
from m6_pipeline.tasks.finetune.evaluate import task_report
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.finetune.run import finetune_variant
from m6_pipeline.tasks.precision import (
    resolve_finetune_precision,
    resolve_prompting_precision,
    resolve_t2i_precision,
)
from m6_pipeline.tasks.qa.config import PoemJob
from m6_pipeline.tasks.t2i.config import T2IJob
from m6_pipeline.tokenization import TokenizerConfig, train_wordpiece
from tests.conftest import ROOT

TEXTS = ["这款红色连衣裙采用条纹设计", "这款蓝色背包采用格子设计", "这款黄色雨伞采用圆点设计", "红色", "蓝色", "黄色"]


class FakeProbe:
    """A probe that reports fixed GFLOP/s and remembers what it was asked."""

    def __init__(self, fp32_gflops: float, bf16_gflops: float):
        self.result = ProbeResult(fp32_gflops=fp32_gflops, bf16_gflops=bf16_gflops)
        self.calls: list[tuple] = []

    def __call__(self, shape, *_):
        self.calls.append(shape)
        return self.result


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece([TEXTS * 4], TokenizerConfig(vocab_size=120, min_frequency=1))[0]


@pytest.fixture()
def pretrained(tmp_path, tokenizer):
    config = M6Config.of_size("tiny", vocab_size=tokenizer.get_vocab_size(), n_patches=4, d_patch_feature=8,
                              max_positions=48, dropout=0.0)
    torch.manual_seed(0)
    save_model(M6Model(config), str(tmp_path / "w.safetensors"))
    export_pretrained(tmp_path / "w.safetensors", config, {"run": "tiny"}, tmp_path / "pretrained")
    return tmp_path / "pretrained", config


def _job(tmp_path, pretrained_dir) -> FinetuneJob:
    training = FinetuneTraining(steps=2, batch_size=4, warmup_steps=0, log_every=1, eval_every=2,
                                checkpoint_every=2, precision="auto")
    return FinetuneJob(task="caption", pretrained_dir=pretrained_dir, out_dir=tmp_path / "out",
                       training=training, max_prompt_tokens=8, max_target_tokens=6, torch_threads=1)


def _examples(n: int) -> list[TaskExample]:
    return [TaskExample(id=str(i), prompt=TEXTS[i % 3], target=TEXTS[3 + i % 3]) for i in range(n)]


@pytest.mark.parametrize("bf16_gflops, chosen", [(10.0, "fp32"), (400.0, "bf16")])
def test_finetune_auto_is_resolved_once_and_lands_in_the_stage_metrics(
    tmp_path, tokenizer, pretrained, bf16_gflops, chosen
):
    pretrained_dir, config = pretrained
    probe = FakeProbe(fp32_gflops=100.0, bf16_gflops=bf16_gflops)
    job = resolve_finetune_precision(_job(tmp_path, pretrained_dir), cache_path=tmp_path / "probe.json",
                                     probe=probe)
    assert job.training.precision == chosen
    assert job.precision_choice["requested"] == "auto" and job.precision_choice["precision"] == chosen
    # the probe ran at the stage's shape: batch x the longest sequence, d_model -> ffn width
    shape, = probe.calls
    longest = 4 + 8 + 1 + 6 + 2  # patches, prompt, [SEP], target, [BOS] and [EOS]
    assert (shape.tokens, shape.d_in, shape.d_out) == (4 * longest, config.d_model, config.ffn_width)
    assert job.precision_choice["probe"]["threads"] == 1  # the stage's torch_threads

    records = {}
    for variant in ("pretrained", "baseline"):
        _, records[variant] = finetune_variant(job, variant, _examples(8), _examples(4), tokenizer, {}, {})
        assert records[variant]["precision"] == job.precision_choice
    assert len(probe.calls) == 1  # both variants ran under the stage's one choice
    metrics = task_report(job, {"scores": {}}, False, records)
    assert metrics["precision"]["requested"] == "auto" and metrics["precision"]["precision"] == chosen
    assert f"{bf16_gflops / 100:.2f}x the fp32 speed" in metrics["precision"]["reason"]


def test_a_second_stage_on_this_machine_reads_the_measured_probe(tmp_path, pretrained):
    pretrained_dir, _ = pretrained
    cache = tmp_path / "probe.json"
    resolve_finetune_precision(_job(tmp_path, pretrained_dir), cache_path=cache, probe=FakeProbe(100.0, 10.0))

    def never(*_):
        raise AssertionError("the cached result should have been read")

    job = resolve_finetune_precision(_job(tmp_path, pretrained_dir), cache_path=cache, probe=never)
    assert job.training.precision == "fp32" and job.precision_choice["probe"]["cached"]


def test_explicit_precisions_are_kept_without_a_probe(tmp_path, pretrained):
    pretrained_dir, _ = pretrained
    for precision in ("bf16", "fp32"):
        job = _job(tmp_path, pretrained_dir)
        job = job.model_copy(update={"training": job.training.model_copy(update={"precision": precision})})
        resolved = resolve_finetune_precision(job, cache_path=None, probe=FakeProbe(1.0, 1.0))
        assert resolved.training.precision == precision
        assert resolved.precision_choice["reason"] == "set explicitly in parameters"


def test_unresolved_auto_is_refused_by_the_loop():
    from m6_pipeline.loop_precision import autocast

    with pytest.raises(ValueError, match="resolve the stage's job first"):
        autocast("auto")


def test_text_to_image_probes_its_training_sequence(tmp_path, pretrained):
    pretrained_dir, config = pretrained
    probe = FakeProbe(100.0, 400.0)
    job = T2IJob.model_validate({"pretrained_dir": str(pretrained_dir), "data": {"max_prompt_tokens": 8},
                                 "training": {"batch_size": 4, "precision": "auto"}, "torch_threads": 1})
    job = resolve_t2i_precision(job, n_codes=16, cache_path=tmp_path / "probe.json", probe=probe)
    assert job.training.precision == "bf16" and job.precision_choice["precision"] == "bf16"
    shape, = probe.calls
    assert (shape.tokens, shape.d_in, shape.d_out) == (4 * (8 + 1 + 1 + 16), config.d_model, config.ffn_width)


def test_prompting_probes_the_rows_it_decodes_at_once(tmp_path, pretrained):
    pretrained_dir, config = pretrained
    probe = FakeProbe(100.0, 10.0)
    job = PoemJob(pretrained_dir=pretrained_dir, prompts_path=ROOT / "conf/base/prompts/poem_titles.txt",
                  precision="auto", torch_threads=1)
    job = resolve_prompting_precision(job, cache_path=tmp_path / "probe.json", probe=probe)
    assert job.precision == "fp32" and job.precision_choice["requested"] == "auto"
    shape, = probe.calls
    assert (shape.tokens, shape.d_in, shape.d_out) == (50, config.d_model, config.ffn_width)  # 50 titles
