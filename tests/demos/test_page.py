"""The Demos page (app/views/demos.py) under Streamlit's AppTest: with nothing trained it says
which pipeline to run instead of failing; with the tiny models a caption click shows the
model's caption as plain text; a hostile upload is refused with its reason."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from m6_pipeline.demos.catalogue import catalogue_images
from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.demos.image_text import caption
from m6_pipeline.demos.models import load_image_text_model
from tests.demos.conftest import bomb_png, write_conf

PAGE = Path(__file__).resolve().parents[2] / "app" / "views" / "demos.py"


def _page(monkeypatch, conf_dir: Path) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["app", "--conf-source", str(conf_dir), "--env", "local"])
    monkeypatch.syspath_prepend(str(PAGE.parents[1]))  # the pages import app/common.py, as under streamlit run
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_with_nothing_trained_each_demo_names_its_pipeline(monkeypatch, tmp_path, tiny_world):
    empty = tmp_path / "empty"
    features = tiny_world.features.model_copy(update={"pairs_dir": empty / "pairs"})
    at = _page(monkeypatch, write_conf(tmp_path / "conf", DemoConfig(public=True).resolved(empty), features))
    warnings = [w.value for w in at.warning]
    for pipeline in ("finetune_t2i", "finetune_caption", "finetune_vqa", "pretrain_base"):
        assert any(f"`kedro run --pipeline={pipeline}`" in w for w in warnings), (pipeline, warnings)
    assert len(warnings) == 5 and not at.error  # one per tab (QA and poems share pretrain_base)


@pytest.fixture
def page(monkeypatch, tiny_world) -> AppTest:
    at = _page(monkeypatch, tiny_world.conf_dir)
    assert not at.warning and not at.error
    return at


def test_a_caption_click_shows_the_models_caption(page, tiny_world):
    first = catalogue_images(tiny_world.features.pairs_dir, 1)[0]
    captioner = load_image_text_model(tiny_world.demos, "caption", tiny_world.features)
    expected = caption(captioner, first.png)
    page.button(key="caption_go").click().run()
    assert not page.exception
    assert expected in [t.value for t in page.text]
    assert f"Caption of {first.id}" in [c.value for c in page.caption]


def test_a_draw_click_shows_the_chosen_number_of_images(page):
    page.slider(key="t2i_n").set_value(3).run()
    page.button(key="t2i_go").click().run()
    assert not page.exception and not page.error
    assert len(page.tabs[0].get("image")) == 3


def test_an_uploaded_cmyk_jpeg_is_captioned(page):
    buffer = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 255, 255, 0)).save(buffer, "JPEG")
    page.radio(key="caption_source").set_value("Upload").run()
    page.file_uploader(key="caption_upload").upload("red.jpg", buffer.getvalue(), "image/jpeg").run()
    assert not page.error
    page.button(key="caption_go").click().run()
    assert not page.exception and not page.error
    assert "Caption of the uploaded image" in [c.value for c in page.caption]


def test_a_bomb_upload_is_refused_with_its_reason(page):
    page.radio(key="vqa_source").set_value("Upload").run()
    page.file_uploader(key="vqa_upload").upload("bomb.png", bomb_png(100_000), "image/png").run()
    assert not page.exception
    assert any("rejected" in e.value for e in page.error)
    assert any("image_decompression_bomb" in c.value for c in page.code)
    assert "vqa_go" not in [b.key for b in page.button]  # nothing to ask about


def test_model_output_is_never_rendered_as_html():
    assert "unsafe_allow_html" not in PAGE.read_text()
