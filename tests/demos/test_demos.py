"""The demo functions on tiny random-weight models exported as the pipelines export them:
the right kind of output, the same output for the same seed, poems in the chosen format, and
a missing checkpoint that names the pipeline to run."""

from __future__ import annotations

import numpy as np
import pytest

from m6_pipeline.demos.catalogue import catalogue_images
from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.demos.image_text import answer, caption, image_features
from m6_pipeline.demos.models import (
    MissingCheckpoint,
    load_image_text_model,
    load_prompted_model,
    load_text_to_image_model,
)
from m6_pipeline.demos.prompting import forum_answer, poem, poem_format
from m6_pipeline.demos.text_to_image import text_to_image
from m6_pipeline.demos.upload import validate_upload
from m6_pipeline.model.generation import Sampling
from m6_pipeline.tasks.poem.format import check_poem


@pytest.fixture(scope="module")
def captioner(tiny_world):
    return load_image_text_model(tiny_world.demos, "caption", tiny_world.features)


@pytest.fixture(scope="module")
def catalogue(tiny_world):
    return catalogue_images(tiny_world.features.pairs_dir, 2)


def test_catalogue_images_are_the_first_pairs(tiny_world, catalogue):
    assert [item.id for item in catalogue] == ["catalogue/000000", "catalogue/000001"]
    assert catalogue[0].text.startswith("这款红色连衣裙")
    assert validate_upload(catalogue[0].png, tiny_world.demos.upload)


def test_an_image_becomes_the_patch_features_the_model_was_finetuned_on(captioner, catalogue):
    features = image_features(catalogue[0].png, captioner)
    assert features.shape == (captioner.model.config.n_patches, captioner.model.config.d_patch_feature)
    assert features.dtype == np.float16


def test_caption_is_text_and_deterministic(captioner, catalogue):
    text = caption(captioner, catalogue[0].png)
    assert isinstance(text, str)
    # the tiny model never ends early: the caption fills the finetuning target budget
    assert len(captioner.tokenizer.encode(text).ids) == captioner.card["max_target_tokens"]
    assert caption(captioner, catalogue[0].png) == text
    top_p = Sampling("top_p", top_p=0.9)
    sampled = [caption(captioner, catalogue[0].png, top_p, seed=s) for s in (1, 1)]
    assert sampled[0] == sampled[1]


def test_vqa_answers_a_question_and_refuses_an_empty_one(tiny_world, catalogue):
    model = load_image_text_model(tiny_world.demos, "vqa", tiny_world.features)
    reply = answer(model, catalogue[1].png, "这件商品是什么颜色的")
    assert isinstance(reply, str)
    assert len(model.tokenizer.encode(reply).ids) == model.card["max_target_tokens"]
    with pytest.raises(ValueError, match="ask a question"):
        answer(model, catalogue[1].png, "  ")


def test_forum_answer_is_seeded_text(tiny_world):
    model = load_prompted_model(tiny_world.demos)
    sampling = tiny_world.demos.qa_sampling
    first = forum_answer(model, "夏天穿什么衣服？", sampling, max_new_tokens=12, seed=3)
    assert isinstance(first, str)
    assert 0 < len(model.tokenizer.encode(first).ids) <= 12  # sampled specials are not shown
    assert forum_answer(model, "夏天穿什么衣服？", sampling, max_new_tokens=12, seed=3) == first


@pytest.mark.parametrize(("line_chars", "n_lines"), [(5, 4), (7, 8)])
def test_poem_has_the_chosen_format(tiny_world, line_chars, n_lines):
    model = load_prompted_model(tiny_world.demos)
    fmt = poem_format(line_chars, n_lines)
    text = poem(model, "春夜", fmt, tiny_world.demos.poem_sampling, seed=0)
    assert check_poem(text, fmt) == []
    assert text.count("，") + text.count("。") == n_lines
    assert poem(model, "春夜", fmt, tiny_world.demos.poem_sampling, seed=0) == text


def test_text_to_image_gives_n_seeded_images(tiny_world):
    model = load_text_to_image_model(tiny_world.demos)
    sampling = tiny_world.demos.t2i_sampling
    images = text_to_image(model, "这款红色连衣裙采用条纹设计，中号尺寸。", 3, sampling, seed=1)
    side = model.vqgan.config.resolution
    assert len(images) == 3
    assert all(image.shape == (side, side, 3) and image.dtype == np.uint8 for image in images)
    again = text_to_image(model, "这款红色连衣裙采用条纹设计，中号尺寸。", 3, sampling, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))
    with pytest.raises(ValueError):
        text_to_image(model, "红色", 0, sampling)


def test_demos_generate_under_the_precision_resolved_at_load(tiny_world, catalogue, monkeypatch, tmp_path):
    """`precision: auto` is resolved once per loaded model (here from an injected probe in which
    bf16 runs 4x fp32's speed) and every demo decodes under bf16 autocast."""
    import torch

    import m6_pipeline.demos.models as models
    from m6_pipeline.precision_choice import ProbeResult
    from m6_pipeline.tasks.precision import resolve_generation_precision

    asked = []

    def fast_bf16(shape, *_):
        asked.append(shape)
        return ProbeResult(fp32_gflops=100.0, bf16_gflops=400.0)

    def resolve(*args, **kwargs):
        return resolve_generation_precision(*args, **kwargs, cache_path=tmp_path / "probe.json",
                                            probe=fast_bf16)

    monkeypatch.setattr(models, "resolve_generation_precision", resolve)
    demos = tiny_world.demos.model_copy(update={"precision": "auto"})
    loaded = [load_prompted_model(demos), load_image_text_model(demos, "caption", tiny_world.features),
              load_text_to_image_model(demos)]
    autocast_on = []
    for m in loaded:
        assert m.precision.requested == "auto" and m.precision.precision == "bf16"
        m.model.ln_final.register_forward_pre_hook(
            lambda module, args: autocast_on.append(torch.is_autocast_enabled("cpu")))
    prompted, captioner, painter = loaded
    # rows decoded at once; the captioner's shape is the prompted model's, read from the cache
    assert [s.tokens for s in asked] == [1, demos.max_images] and captioner.precision.probe["cached"]
    assert isinstance(forum_answer(prompted, "夏天穿什么衣服？", demos.qa_sampling, max_new_tokens=4), str)
    assert check_poem(poem(prompted, "春夜", poem_format(5, 4), demos.poem_sampling), poem_format(5, 4)) == []
    assert isinstance(caption(captioner, catalogue[0].png), str)
    images = text_to_image(painter, "这款红色连衣裙采用条纹设计，中号尺寸。", 2, demos.t2i_sampling)
    assert len(images) == 2 and images[0].dtype == np.uint8
    assert autocast_on and all(autocast_on)


def _without(demos: DemoConfig, *removed: str, root) -> DemoConfig:
    """`demos` with the files of `removed` pointing into an empty directory."""
    return demos.model_copy(update={name: root / "missing" / name for name in removed})


@pytest.mark.parametrize(("removed", "load", "pipeline"), [
    (("caption",), lambda d, f: load_image_text_model(d, "caption", f), "finetune_caption"),
    (("vqa",), lambda d, f: load_image_text_model(d, "vqa", f), "finetune_vqa"),
    (("patch_extractor",), lambda d, f: load_image_text_model(d, "vqa", f), "finetune_vqa"),
    (("pretrained", "tokenizer"), lambda d, f: load_prompted_model(d), "pretrain_base"),
    (("t2i", "vqgan"), lambda d, f: load_text_to_image_model(d), "finetune_t2i"),
    (("vqgan",), lambda d, f: load_text_to_image_model(d), "vqgan"),
])
def test_a_missing_checkpoint_names_the_pipeline_that_makes_it(tiny_world, tmp_path, removed, load,
                                                                pipeline):
    demos = _without(tiny_world.demos, *removed, root=tmp_path)
    with pytest.raises(MissingCheckpoint) as info:
        load(demos, tiny_world.features)
    assert isinstance(info.value, FileNotFoundError)
    assert info.value.pipeline == pipeline
    assert f"`kedro run --pipeline={pipeline}`" in str(info.value)
    assert str(tmp_path / "missing") in str(info.value)


def test_missing_catalogue_pairs_name_the_corpus_pipeline(tmp_path):
    with pytest.raises(MissingCheckpoint, match="--pipeline=corpus"):
        catalogue_images(tmp_path, 4)


def test_features_of_another_geometry_are_refused(tiny_world):
    other = tiny_world.features.model_copy(update={"grid": 4, "image_size": 32})
    with pytest.raises(ValueError, match="--env the models were trained with"):
        load_image_text_model(tiny_world.demos, "caption", other)
