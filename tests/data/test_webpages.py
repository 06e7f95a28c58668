"""Generated shop pages and the top-level writer of all embedded raw sources."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from PIL import Image

from m6_pipeline.corpus.config import CatalogueSpec
from m6_pipeline.data.catalogue import generate_catalogue
from m6_pipeline.data.sources import STAMP_NAME, write_default_raw_sources
from m6_pipeline.data.webpages import ABSOLUTE_SRC, ESCAPE_SRC, SHOP_DIR, generate_webpages

SPEC = CatalogueSpec(n_items=60, image_size=80, webpage_fraction=0.2, items_per_page=4, seed=3)


class _Page(HTMLParser):
    """Tags in document order: [tag, attributes, text up to the next tag]; end tags as "/tag"."""

    def __init__(self):
        super().__init__()
        self.tags: list[list] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append([tag, dict(attrs), ""])

    def handle_endtag(self, tag):
        self.tags.append(["/" + tag, {}, ""])

    def handle_data(self, data):
        if self.tags:
            self.tags[-1][2] += data


def _parse(path, encoding="utf-8") -> _Page:
    page = _Page()
    page.feed(path.read_bytes().decode(encoding))
    return page


def _images(page: _Page) -> list[dict]:
    return [attrs for tag, attrs, _ in page.tags if tag == "img"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    manifest = generate_catalogue(raw, SPEC)
    n_pages = generate_webpages(raw, SPEC, manifest.webpage_items)
    shop_dir = raw / SHOP_DIR
    meta = json.loads((shop_dir / ".pages.json").read_text(encoding="utf-8"))
    pages = {m["file"]: _parse(shop_dir / m["file"], m["encoding"]) for m in meta["pages"]}
    return raw, manifest, n_pages, meta, pages


def test_pages_are_written(shop):
    raw, manifest, n_pages, meta, pages = shop
    files = sorted(p.name for p in (raw / SHOP_DIR).glob("page_*.html"))
    assert n_pages == len(files) == len(meta["pages"]) == 4  # 12 items, 4 a page, one notice page
    assert files == [f"page_{k:04d}.html" for k in range(1, 5)]


def test_each_held_back_item_is_on_exactly_one_page_but_the_repost(shop):
    raw, manifest, _, _, pages = shop
    srcs = [im["src"] for page in pages.values() for im in _images(page)]
    for item in manifest.webpage_items:
        assert srcs.count(f"images/{item.key}.png") == 1, item.id
    listed = (raw / "pairs/catalogue/items.jsonl").read_text(encoding="utf-8")
    assert not any(item.id in listed for item in manifest.webpage_items)
    reposts = [s for s in srcs if "repost_" in s]
    assert len(reposts) == 1
    original = reposts[0].replace("repost_", "")
    pages_with = [name for name, page in pages.items() for im in _images(page)
                  if im["src"] in (original, reposts[0])]
    assert len(set(pages_with)) == 2
    shop_dir = raw / SHOP_DIR
    assert (shop_dir / reposts[0]).read_bytes() == (shop_dir / original).read_bytes()


def test_all_four_layouts_carry_the_description(shop):
    _, manifest, _, _, pages = shop
    texts = {f"images/{item.key}.png": (item.title, item.text) for item in manifest.webpage_items}
    seen = set()
    for page in pages.values():
        tags = page.tags
        for k, (tag, attrs, _) in enumerate(tags):
            if tag != "img" or attrs.get("src") not in texts:
                continue
            title, text = texts[attrs["src"]]
            if k + 1 < len(tags) and tags[k + 1][0] == "figcaption":
                assert attrs["alt"] == title and tags[k + 1][2] == text
                seen.add("figure")
            elif k + 1 < len(tags) and tags[k + 1][0] == "p":
                assert attrs["alt"] == title and tags[k + 1][2] == text
                seen.add("alt_then_p")
            elif tags[k - 2][0] == "p" and tags[k - 2][2] == text:
                assert attrs["alt"] == ""
                seen.add("p_then_img")
            else:
                assert attrs["alt"] == text
                seen.add("alt_only")
    assert seen == {"figure", "alt_then_p", "p_then_img", "alt_only"}


def test_pages_carry_the_clutter_of_a_crawl(shop):
    raw, _, _, meta, pages = shop
    page = pages["page_0001.html"]
    tags = [tag for tag, _, _ in page.tags]
    assert {"title", "script", "style", "nav", "footer", "a"} <= set(tags)
    scripts = [text for tag, _, text in page.tags if tag == "script"]
    assert any("加入购物车" in s and "function" in s for s in scripts)
    srcs = [im["src"] for im in _images(page)]
    assert any(s.startswith("https://cdn.example.com/") for s in srcs)
    assert any(s.startswith("//cdn.example.com/") for s in srcs)
    icons = [s for s in srcs if s.startswith("icons/")]
    assert icons
    for src in icons:
        width, height = Image.open(raw / SHOP_DIR / src).size
        assert width == height and width in (16, 32) and width * height < 5000


def test_hazards_are_planted(shop):
    raw, _, _, meta, pages = shop
    shop_dir = raw / SHOP_DIR
    srcs = [im["src"] for page in pages.values() for im in _images(page)]
    assert ESCAPE_SRC in srcs and ABSOLUTE_SRC in srcs
    local = [s for s in srcs if not s.startswith(("http", "//", "/", "../"))]
    missing = [s for s in local if not (shop_dir / s).exists()]
    assert len(missing) == 1 and "missing" in missing[0]
    assert [name for name, page in pages.items() if not _images(page)] == ["page_0004.html"]
    kinds = {h["kind"] for m in meta["pages"] for h in m["hazards"]}
    assert kinds == {"path_escape", "absolute_path", "missing_file", "duplicate_image", "no_images"}


def test_one_page_is_gbk(shop):
    raw, _, _, meta, _ = shop
    gbk = [m["file"] for m in meta["pages"] if m["encoding"] == "gbk"]
    assert len(gbk) == 1
    data = (raw / SHOP_DIR / gbk[0]).read_bytes()
    assert b'<meta charset="gbk">' in data
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert "热卖商品" in data.decode("gbk")


def test_pages_are_deterministic(shop, tmp_path):
    raw, manifest, _, _, _ = shop
    generate_webpages(tmp_path, SPEC, manifest.webpage_items)
    def files(root):
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    ours, theirs = files(tmp_path / SHOP_DIR), files(raw / SHOP_DIR)
    assert ours == theirs
    for rel in ours:
        assert (tmp_path / SHOP_DIR / rel).read_bytes() == (raw / SHOP_DIR / rel).read_bytes(), rel


def test_default_raw_sources_are_written_once(tmp_path):
    summary = write_default_raw_sources(tmp_path, SPEC)
    assert summary["skipped"] is False
    assert summary["sources"]["catalogue"] == 48 and summary["sources"]["webpage_items"] == 12
    assert summary["sources"]["shop_pages"] == 4 and summary["sources"]["news"] > 19000
    assert (tmp_path / STAMP_NAME).exists()
    page = tmp_path / SHOP_DIR / "page_0001.html"
    before = page.stat().st_mtime_ns
    again = write_default_raw_sources(tmp_path, SPEC)
    assert again == {**summary, "skipped": True} and page.stat().st_mtime_ns == before

    # a lost file or another spec means the stamp no longer holds
    page.unlink()
    assert write_default_raw_sources(tmp_path, SPEC)["skipped"] is False and page.exists()
    fewer = write_default_raw_sources(tmp_path, SPEC.model_copy(update={"n_items": 20}))
    assert fewer["sources"]["shop_pages"] == 2  # 4 items on one page + the notice page
    assert len(list((tmp_path / SHOP_DIR).glob("page_*.html"))) == 2
    assert len(list((tmp_path / SHOP_DIR / "images").glob("*.png"))) == 5  # 4 items + the repost
