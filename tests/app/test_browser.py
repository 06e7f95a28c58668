"""The real app in a real browser: `streamlit run` serves it, headless Debian Chromium (driven by
Playwright) signs in, scores an item with the keyboard alone and saves a screenshot; the admin
then revokes the annotator and the open tab's next key press ends the session. The item's model
output carries markup, which must show as text and never run."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from m6_pipeline.annotation.store import AnnotationStore
from m6_pipeline.evaluation.batches import build_batch
from tests.annotation.sample_batch import HOSTILE, png
from tests.app.conftest import APP

CHROMIUM = "/usr/bin/chromium"
ROOT = APP.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    """A store with one annotator whose queue is two captions with markup in them, and the app on a free port."""
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (conf / "base" / "parameters_app.yml").write_text(f"app:\n  store: {tmp_path / 'store.sqlite'}\n")
    rows = {"caption": [{"id": "c0", "prompt": "", "image_id": "catalogue/000001",
                         "outputs": {"pretrained": HOSTILE, "baseline": "基线" + HOSTILE}}]}
    items, key = build_batch(rows, {"caption": 1}, seed=0)
    store = AnnotationStore(tmp_path / "store.sqlite")
    token = store.create_annotator("li")
    store.assign(store.load_batch(items, key, {items[0]["image_key"]: png((200, 30, 30))}, seed=0), 1, seed=0)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP / "streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", "--conf-source", str(conf), "--env", "local"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"streamlit did not start: {server.stdout.read().decode()[-2000:]}")
            time.sleep(0.3)
    yield url, token, store
    server.terminate()
    server.wait(timeout=20)


def test_sign_in_and_score_with_the_keyboard(served_app, tmp_path):
    assert Path(CHROMIUM).exists(), f"the browser test needs Debian's chromium at {CHROMIUM}: `make setup` installs it"
    url, token, store = served_app
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Annotate")).to_be_visible(timeout=30_000)
        expect(page.get_by_text("0 of 2 answered")).to_be_visible()
        # the markup in the model's output is on the page as text, and nothing of it ran
        expect(page.get_by_text("<script>window.pwned=1</script>", exact=False)).to_be_visible()
        assert page.evaluate("window.pwned") is None
        assert page.locator("img[src='x']").count() == 0
        page.locator("h1").click()  # focus on the page, not a text box
        # grammar, correctness, richness: each key press scores the highlighted criterion; as an
        # annotator does, wait to see the next one highlighted before pressing the next key
        for value, after in (("4", "Score correctness"), ("2", "Score richness"), ("5", "Every criterion is scored")):
            page.keyboard.press(value)
            expect(page.get_by_text(after)).to_be_visible(timeout=15_000)
        expect(page.get_by_role("button", name="Submit")).to_be_enabled(timeout=15_000)
        page.keyboard.press("Enter")
        expect(page.get_by_text("1 of 2 answered")).to_be_visible(timeout=15_000)
        screenshot = tmp_path / "annotate.png"
        page.screenshot(path=str(screenshot), full_page=True)
        # the admin revokes li while the tab is open: li's next key press ends the session
        store.deactivate("li")
        page.locator("h1").click()
        page.keyboard.press("3")
        expect(page.get_by_text("your access was revoked", exact=False)).to_be_visible(timeout=15_000)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        browser.close()
    answers = store.owner_answers()
    assert [(a["annotator"], a["scores"]) for a in answers] == [("li", {"grammar": 4, "correctness": 2, "richness": 5})]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
