"""Eight annotators at once through the real app: `streamlit run` serves it, one headless
Chromium (Playwright, async) opens a browser context per annotator, and each signs in and scores
items as fast as the page lets it for `--seconds`. Reported: submit latency (the Submit click to
the progress line counting the answer, p50 / p95 / max), answers per second, and the store's
check: every answer a page confirmed is in the store once, none is lost or duplicated.

    .venv/bin/python benchmarks/annotation_load.py [--annotators 8] [--seconds 60]

Writes benchmarks/results/annotation_load.json with the machine it ran on."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from PIL import Image
from playwright.async_api import async_playwright, expect

from m6_pipeline.annotation.store import OWNER, AnnotationStore
from m6_pipeline.evaluation.batches import build_batch, image_key
from record import header

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
PROGRESS = re.compile(r"(\d+) of (\d+) answered")
# the page's buttons by their Streamlit keys (st-key-<key> classes): labels carry shortcut hints
VALUE_ENABLED = "[class*='st-key-score-'] button:not([disabled])"
CHANGE_ENABLED = "[class*='st-key-change-'] button:not([disabled])"


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), ((37 * seed) % 256, (91 * seed) % 256, 160)).save(out, format="PNG")
    return out.getvalue()


def batch(n_rows: int = 60) -> tuple[list[dict], dict, dict[str, bytes]]:
    """A batch of captions, VQA, forum QA and poems: more items than 60 s of scoring reaches."""
    rows = {
        "caption": [{"id": f"c{i}", "prompt": "", "image_id": f"catalogue/{i:06d}", "reference": "参考",
                     "outputs": {"pretrained": f"一件红色的连衣裙，款式{i}", "baseline": f"基线描述{i}"}} for i in range(n_rows)],
        "vqa": [{"id": f"v{i}", "prompt": "这是什么商品？回答：", "image_id": f"catalogue/{i:06d}", "reference": "连衣裙",
                 "outputs": {"pretrained": "连衣裙", "baseline": f"手表{i}"}} for i in range(n_rows)],
        "qa": [{"id": f"q{i}", "prompt": f"问题{i}：为什么天是蓝的？回答：", "reference": "因为瑞利散射。",
                "outputs": {"pretrained": "因为空气散射蓝光。", "baseline": f"的的的{i}"}} for i in range(n_rows)],
        "poem": [{"id": f"p{i}", "prompt": f"春晓{i} 正文：",
                  "outputs": {"pretrained": "春眠不觉晓\n处处闻啼鸟\n夜来风雨声\n花落知多少", "baseline": f"春春春{i}"}}
                 for i in range(n_rows)],
    }
    items, key = build_batch(rows, {"caption": 60, "vqa": 60, "qa": 40, "poem": 40}, seed=0)
    images = {image_key(f"catalogue/{i:06d}"): _png(i) for i in range(n_rows)}
    return items, key, images


def serve(conf: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app/streamlit_app.py"), "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
         "--", "--conf-source", str(conf), "--env", "local"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("streamlit did not start")
            time.sleep(0.3)


async def settled(page) -> None:
    """The script run is over and no element of the previous run is left on the page (Streamlit
    keeps stale elements, faded, until the run that replaces them ends)."""
    await expect(page.locator("[data-test-script-state='running']")).to_have_count(0, timeout=120_000)
    await expect(page.locator("[data-stale='true']")).to_have_count(0, timeout=120_000)


async def answered(page) -> tuple[int, int]:
    text = await page.get_by_text(PROGRESS).first.inner_text()
    done, total = PROGRESS.search(text).groups()
    return int(done), int(total)


async def sign_in(browser, url: str, token: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Annotate")).to_be_visible(timeout=120_000)
    return page


async def annotate(page, until: float, latencies: list[float]) -> None:
    """Score the next item (the first value offered for each criterion) and submit, until
    `until`; each confirmed submit's latency goes to `latencies`."""
    while time.monotonic() < until:
        await settled(page)
        done, total = await answered(page)
        if done == total:
            break
        submit = page.get_by_role("button", name="Submit")
        while not await submit.is_enabled():
            scored = await page.locator(CHANGE_ENABLED).count()
            await page.locator(VALUE_ENABLED).first.click()  # the first value offered
            await expect(page.locator(CHANGE_ENABLED)).to_have_count(scored + 1, timeout=60_000)
            await settled(page)
        started = time.perf_counter()
        await submit.click()
        await expect(page.get_by_text(f"{done + 1} of {total} answered")).to_be_visible(timeout=120_000)
        latencies.append(time.perf_counter() - started)



async def drive(url: str, tokens: dict[str, str], seconds: float) -> dict[str, list[float]]:
    """Every annotator signs in, then all score at once for `seconds`."""
    record: dict[str, list[float]] = {name: [] for name in tokens}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        pages = await asyncio.gather(*(sign_in(browser, url, token) for token in tokens.values()))
        until = time.monotonic() + seconds
        await asyncio.gather(*(annotate(page, until, record[name]) for name, page in zip(tokens, pages)))
        await browser.close()
    return record


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/annotation_load.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="m6-load-") as work:
        work = Path(work)
        conf = work / "conf"
        (conf / "base").mkdir(parents=True)
        (conf / "local").mkdir()
        (conf / "base" / "parameters_app.yml").write_text(f"app:\n  store: {work / 'store.sqlite'}\n")
        store = AnnotationStore(work / "store.sqlite")
        tokens = {f"annotator{i}": store.create_annotator(f"annotator{i}") for i in range(args.annotators)}
        items, key, images = batch()
        store.assign(store.load_batch(items, key, images, seed=0), args.annotators, seed=0)
        server, url = serve(conf)
        try:
            started = time.monotonic()
            record = asyncio.run(drive(url, tokens, args.seconds))
            wall = time.monotonic() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
        answers = store.answers(OWNER)
    confirmed = Counter({name: len(latencies) for name, latencies in record.items()})
    stored = Counter(a["annotator"] for a in answers)
    duplicates = sum(n - 1 for n in Counter((a["annotator"], a["item_id"]) for a in answers).values() if n > 1)
    latencies = [x for values in record.values() for x in values]
    result = {
        "benchmark": "annotation_load", **header(),
        "annotators": args.annotators, "scoring_seconds": args.seconds, "wall_seconds": round(wall, 1),
        "answers_confirmed": sum(confirmed.values()), "answers_stored": len(answers),
        "lost": sum(max(0, confirmed[n] - stored[n]) for n in confirmed),
        "unconfirmed_in_store": sum(max(0, stored[n] - confirmed[n]) for n in stored),
        "duplicated": duplicates,
        "submit_latency_s": {"p50": round(statistics.median(latencies), 3), "p95": round(percentile(latencies, 0.95), 3),
                             "max": round(max(latencies), 3), "n": len(latencies)},
        "per_annotator": dict(confirmed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
