"""Demos: text-to-image, captioning, VQA, forum QA and poems from the trained models.

Each model loads once (st.cache_resource, reloaded when its exported files change); a model
that is not trained yet shows the pipeline to run. Model output is shown as plain text
(st.text), never as Markdown or HTML. The library side is m6_pipeline.demos."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

import common
from m6_pipeline.app_settings import settings_from_argv
from m6_pipeline.demos.catalogue import catalogue_images
from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.demos.image_text import answer, caption
from m6_pipeline.demos.models import (
    MissingCheckpoint,
    load_image_text_model,
    load_prompted_model,
    load_text_to_image_model,
)
from m6_pipeline.demos.prompting import POEM_LINES, forum_answer, poem, poem_format
from m6_pipeline.demos.text_to_image import text_to_image
from m6_pipeline.demos.upload import UploadRejected, validate_upload
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.model.pretrained import WEIGHTS
from m6_pipeline.vqgan.store import WEIGHTS as VQGAN_WEIGHTS

SHOWN_PIXELS = 128  # generated images are small (the VQGAN's resolution): shown enlarged


def _stamp(*paths: Path) -> tuple:
    """When the files were last written: a new export changes the cache key, so it is loaded."""
    return tuple(p.stat().st_mtime_ns if p.exists() else None for p in paths)


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _image_text_model(config_json: str, task: str, features_json: str, stamp: tuple):
    config = DemoConfig.model_validate_json(config_json)
    return load_image_text_model(config, task, FeaturesConfig.model_validate_json(features_json))


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _prompted_model(config_json: str, stamp: tuple):
    return load_prompted_model(DemoConfig.model_validate_json(config_json))


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _text_to_image_model(config_json: str, stamp: tuple):
    return load_text_to_image_model(DemoConfig.model_validate_json(config_json))


@st.cache_resource(show_spinner=False, max_entries=2)
def _catalogue(pairs_dir: str, n: int, stamp: tuple):
    return catalogue_images(Path(pairs_dir), n)


def _loaded(load, *args):
    """The model, or None after saying which pipeline makes what is missing."""
    try:
        return load(*args)
    except MissingCheckpoint as missing:
        st.warning(f"Not trained yet: {missing}, then reload this page.")
    except (OSError, ValueError) as error:
        st.error("The model could not be loaded:")
        st.code(str(error), language=None, wrap_lines=True)
    return None


def _failed(error: Exception) -> None:
    st.error("The demo could not run on this input:")
    st.code(str(error), language=None, wrap_lines=True)


def _show_text(label: str, text: str) -> None:
    st.caption(label)
    st.text(text if text else "(empty output)")


def _enlarged(image):
    scale = max(1, SHOWN_PIXELS // image.shape[0])
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def _image_input(config: DemoConfig, pairs_dir: Path, key: str) -> tuple[str, bytes] | None:
    """(what the image is, PNG bytes) from the catalogue or a validated upload."""
    source = st.radio("Image", ["Catalogue", "Upload"], horizontal=True, key=f"{key}_source")
    if source == "Catalogue":
        try:
            items = _catalogue(str(pairs_dir), config.catalogue_images, _stamp(pairs_dir))
        except MissingCheckpoint as missing:
            st.info(f"No catalogue images: {missing}")
            return None
        if not items:
            st.info(f"No pairs in {pairs_dir}")
            return None
        chosen = st.selectbox("Catalogue image", items, format_func=lambda item: item.id,
                              key=f"{key}_pick")
        st.image(chosen.png, width=SHOWN_PIXELS)
        _show_text("Its catalogue text (the model may have seen this pair in training)", chosen.text)
        return chosen.id, chosen.png
    limit_mb = max(1, config.upload.max_bytes // 1_000_000)
    upload = st.file_uploader("Upload an image", type=["png", "jpg", "jpeg", "webp", "gif", "bmp"],
                              key=f"{key}_upload", max_upload_size=limit_mb)
    if upload is None:
        return None
    try:
        png = validate_upload(upload.getvalue(), config.upload)
    except UploadRejected as rejected:
        st.error("The upload was rejected and not decoded:")
        st.code(str(rejected), language=None, wrap_lines=True)
        return None
    st.image(png, width=SHOWN_PIXELS)
    return "the uploaded image", png


def _on_click(label: str, key: str, run) -> None:
    """A button that runs the demo and keeps its output (other widgets rerun the page)."""
    if st.button(label, key=f"{key}_go"):
        try:
            with st.spinner("Generating…"):
                st.session_state[f"{key}_output"] = run()
        except ValueError as error:
            _failed(error)


def _output(key: str):
    return st.session_state.get(f"{key}_output")


def _seed(key: str) -> int:
    return int(st.number_input("Seed", 0, 2**31 - 1, 0, key=f"{key}_seed"))


def text_to_image_demo(config: DemoConfig) -> None:
    stamp = _stamp(config.t2i / WEIGHTS, config.vqgan / VQGAN_WEIGHTS, config.tokenizer)
    m = _loaded(_text_to_image_model, config.model_dump_json(), stamp)
    if m is None:
        return
    prompt = st.text_input("Chinese prompt", "这款红色连衣裙采用条纹设计，中号尺寸。", key="t2i_prompt")
    n = st.slider("Images", 1, config.max_images, min(4, config.max_images), key="t2i_n")
    seed = _seed("t2i")
    _on_click("Draw", "t2i", lambda: (prompt, text_to_image(m, prompt, n, config.t2i_sampling, seed)))
    if out := _output("t2i"):
        _show_text("Prompt", out[0])
        columns = st.columns(min(4, len(out[1])))
        for k, image in enumerate(out[1]):
            columns[k % len(columns)].image(_enlarged(image), caption=f"sample {k + 1}")


def _image_text_inputs(config: DemoConfig, features: FeaturesConfig, task: str):
    """(the finetuned model of `task`, (what the image is, PNG)), or None when either is missing."""
    stamp = _stamp(getattr(config, task) / WEIGHTS, config.tokenizer, config.patch_extractor)
    m = _loaded(_image_text_model, config.model_dump_json(), task, features.model_dump_json(), stamp)
    picked = None if m is None else _image_input(config, features.pairs_dir, task)
    return None if picked is None else (m, picked)


def caption_demo(config: DemoConfig, features: FeaturesConfig) -> None:
    if (inputs := _image_text_inputs(config, features, "caption")) is None:
        return
    m, (name, png) = inputs
    _on_click("Caption", "caption", lambda: (name, caption(m, png)))
    if out := _output("caption"):
        _show_text(f"Caption of {out[0]}", out[1])


def vqa_demo(config: DemoConfig, features: FeaturesConfig) -> None:
    if (inputs := _image_text_inputs(config, features, "vqa")) is None:
        return
    m, (name, png) = inputs
    question = st.text_input("Question", "这件商品是什么颜色的？", key="vqa_question",
                             help="e.g. 这是什么商品？ 这件商品是什么图案的？")
    _on_click("Ask", "vqa", lambda: (f"{question} ({name})", answer(m, png, question)))
    if out := _output("vqa"):
        _show_text("Question", out[0])
        _show_text("Answer", out[1])


def _prompted(config: DemoConfig):
    """The pretrained M6 that forum QA and poems prompt, or None when it is missing."""
    stamp = _stamp(config.pretrained / WEIGHTS, config.tokenizer)
    return _loaded(_prompted_model, config.model_dump_json(), stamp)


def forum_qa_demo(config: DemoConfig) -> None:
    if (m := _prompted(config)) is None:
        return
    question = st.text_area("Forum question", "夏天穿什么颜色的衣服比较凉快？", key="qa_question")
    seed = _seed("qa")
    _on_click("Answer", "qa", lambda: (question, forum_answer(
        m, question, config.qa_sampling, config.qa_max_new_tokens, seed)))
    if out := _output("qa"):
        _show_text("Question", out[0])
        _show_text("Answer (the pretrained M6, no finetuning)", out[1])


def poem_demo(config: DemoConfig) -> None:
    if (m := _prompted(config)) is None:
        return
    title = st.text_input("Title", "春夜", key="poem_title")
    line_chars = st.radio("Characters per line", [5, 7], horizontal=True, key="poem_chars")
    n_lines = st.selectbox("Lines", POEM_LINES, key="poem_lines")
    fmt, seed = poem_format(line_chars, n_lines), _seed("poem")
    _on_click("Write", "poem", lambda: (title, poem(m, title, fmt, config.poem_sampling, seed)))
    if out := _output("poem"):
        _show_text(out[0], out[1].replace("。", "。\n").strip())


settings = settings_from_argv(sys.argv[1:])
if not settings.demos.public:
    common.signed_in_or_stop()  # the models' CPU and the catalogue are for signed-in users
st.title("Demos")
demos = settings.demos.resolved(Path.cwd())
features = settings.features
features = features.model_copy(update={"pairs_dir": Path.cwd() / features.pairs_dir})
tabs = st.tabs(["Text to image", "Captioning", "Visual QA", "Forum QA", "Poem"])
with tabs[0]:
    text_to_image_demo(demos)
with tabs[1]:
    caption_demo(demos, features)
with tabs[2]:
    vqa_demo(demos, features)
with tabs[3]:
    forum_qa_demo(demos)
with tabs[4]:
    poem_demo(demos)
