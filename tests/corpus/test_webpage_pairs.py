"""Image + surrounding text from crawled pages: each layout, the discarded page text, page
encodings, and the reasons for pages and images that yield no pair."""

from __future__ import annotations

from pathlib import Path

import pytest

from m6_pipeline.corpus.config import PairText
from m6_pipeline.corpus.reasons import Reason
from m6_pipeline.corpus.webpage_pairs import PageImage, decode_html, extract_page_pairs

PAIR_TEXT = PairText()
DESCRIPTION = "这款红色连衣裙采用纯棉面料，夏天穿着清爽透气。"


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    (root / "html/shop/images").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png", "logo.png"):
        (root / "html/shop/images" / name).write_bytes(b"png")  # existence is all that's checked
    (tmp_path / "outside.png").write_bytes(b"png")
    return root


def _page(body: str, charset: str = "utf-8") -> str:
    return f'<!DOCTYPE html><html><head><meta charset="{charset}"><title>店铺</title></head><body>{body}</body></html>'


def _extract(raw: Path, body: str, name: str = "html/shop/page_0001.html",
             encoding: str = "utf-8", charset: str = "utf-8") -> list[PageImage]:
    path = raw / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_page(body, charset).encode(encoding))
    return extract_page_pairs(path.read_bytes(), path, raw, PAIR_TEXT)


def _one(raw: Path, body: str) -> PageImage:
    images = _extract(raw, body)
    assert len(images) == 1, images
    return images[0]


def test_figcaption_is_the_text_with_alt_in_front(raw: Path):
    im = _one(raw, f'<figure><img src="images/a.png" alt="夏季新款"><figcaption>{DESCRIPTION}</figcaption>'
                   "</figure><p>别的句子不要。</p>")
    assert (im.text, im.reason) == (f"夏季新款 {DESCRIPTION}", None)
    assert im.image_path == (raw / "html/shop/images/a.png").resolve()
    assert (im.id, im.source, im.image_ref) == ("html/shop/page_0001.html#img0", "shop", "images/a.png")


def test_following_paragraph_is_the_text(raw: Path):
    im = _one(raw, f'<div class="goods"><img src="images/a.png" alt="夏季新款"><p>{DESCRIPTION}</p>'
                   '<span class="price">¥99</span></div>')
    assert im.text == f"夏季新款 {DESCRIPTION}"


def test_preceding_paragraph_is_the_text_when_nothing_follows(raw: Path):
    im = _one(raw, f'<div class="item"><p>{DESCRIPTION}</p><img src="images/a.png" alt=""></div>')
    assert im.text == DESCRIPTION


def test_alt_only(raw: Path):
    images = _extract(raw, f'<main><div class="pic"><img src="images/a.png" alt="{DESCRIPTION}"></div>'
                           '<div class="pic"><img src="images/b.png" alt="蓝色帽子，纯棉透气"></div></main>')
    assert [im.text for im in images] == [DESCRIPTION, "蓝色帽子，纯棉透气"]


def test_alt_is_not_repeated_when_the_text_contains_it(raw: Path):
    im = _one(raw, f'<figure><img src="images/a.png" alt="红色连衣裙"><figcaption>{DESCRIPTION}'
                   "</figcaption></figure>")
    assert im.text == DESCRIPTION  # the alt is already part of the caption


def test_image_in_a_link_wrapper_takes_the_wrapper_sibling(raw: Path):
    im = _one(raw, f'<li><a href="/item/1"><img src="images/a.png"></a><span>{DESCRIPTION}</span></li>')
    assert im.text == DESCRIPTION


def test_short_price_tag_loses_to_the_description(raw: Path):
    im = _one(raw, f'<div><img src="images/a.png"><span>¥99</span><p>{DESCRIPTION}</p></div>')
    assert im.text == DESCRIPTION


def test_text_does_not_cross_to_another_image(raw: Path):
    images = _extract(raw, '<div><img src="images/a.png" alt="甲"><img src="images/b.png" alt="乙">'
                           f"<p>{DESCRIPTION}</p></div>")
    assert [im.text for im in images] == ["甲", f"乙 {DESCRIPTION}"]


SECRETS = ("SCRIPT_SECRET", "STYLE_SECRET", "NAV_SECRET", "HEADER_SECRET", "FOOTER_SECRET",
           "NOSCRIPT_SECRET")


def test_script_style_nav_header_footer_text_is_never_used(raw: Path):
    body = ("<header><h1>HEADER_SECRET</h1></header>"
            '<nav><a href="/">NAV_SECRET</a><img src="images/logo.png" alt="NAV_SECRET"></nav>'
            "<div><script>var x = 'SCRIPT_SECRET';</script><style>.a{content:'STYLE_SECRET'}</style>"
            '<noscript>NOSCRIPT_SECRET</noscript><img src="images/a.png" alt="商品">'
            "<script>SCRIPT_SECRET()</script></div>"
            '<div><nav>NAV_SECRET</nav><img src="images/b.png"><footer>FOOTER_SECRET</footer></div>'
            "<footer><p>FOOTER_SECRET</p></footer>")
    images = _extract(raw, body)
    texts = " ".join(im.text or "" for im in images) + " ".join(im.detail or "" for im in images)
    assert not [s for s in SECRETS if s in texts]
    by_ref = {im.image_ref: im for im in images}
    assert by_ref["images/a.png"].text == "商品"
    assert by_ref["images/b.png"].reason is Reason.NO_SURROUNDING_TEXT
    assert by_ref["images/logo.png"].reason is Reason.NO_SURROUNDING_TEXT  # page chrome
    assert "<nav>" in by_ref["images/logo.png"].detail


def test_other_sentences_of_the_page_are_not_emitted(raw: Path):
    body = ("<p>本店公告：全场满199元包邮。</p>"
            f'<div class="goods"><img src="images/a.png"><p>{DESCRIPTION}</p></div>'
            "<article><p>一篇与图片无关的长文章。</p><p>第二段。</p></article>")
    im = _one(raw, body)
    assert im.text == DESCRIPTION


def test_gbk_page_with_meta_charset(raw: Path):
    im = _extract(raw, f'<figure><img src="images/a.png"><figcaption>{DESCRIPTION}</figcaption></figure>',
                  encoding="gbk", charset="gbk")[0]
    assert im.text == DESCRIPTION


def test_gbk_page_without_declaration_falls_back_to_gb18030(raw: Path):
    im = _extract(raw, f'<figure><img src="images/a.png"><figcaption>{DESCRIPTION}</figcaption></figure>',
                  encoding="gbk", charset="utf-8")[0]  # mislabelled as UTF-8
    assert im.text == DESCRIPTION


def test_byte_order_mark_wins():
    text, encoding = decode_html(b"\xef\xbb\xbf" + _page("中文", charset="gbk").encode("utf-8"))
    assert encoding == "utf-8" and "中文" in text


def test_undecodable_page_is_one_unparseable_record(raw: Path):
    path = raw / "html/shop/broken.html"
    path.write_bytes(b"<html><body>\x80\x80\xff<img src='images/a.png'></body></html>")
    images = extract_page_pairs(path.read_bytes(), path, raw, PAIR_TEXT)
    assert len(images) == 1
    assert images[0].reason is Reason.PAGE_UNPARSEABLE
    assert images[0].id == "html/shop/broken.html#page"
    assert "meta charset" in images[0].detail


def test_page_without_images_is_one_record(raw: Path):
    images = _extract(raw, "<h1>配送说明</h1><p>下单后48小时内发货。</p>", name="html/notice.html")
    assert [(im.id, im.source, im.reason) for im in images] == [
        ("html/notice.html#page", "html", Reason.PAGE_WITHOUT_IMAGES)]


def test_remote_escaping_absolute_and_missing_images_carry_their_reason(raw: Path):
    body = "".join(f'<div class="goods"><img src="{src}"><p>{DESCRIPTION}</p></div>' for src in (
        "https://cdn.example.com/a.jpg", "//cdn.example.com/b.jpg", "data:image/png;base64,AAAA",
        "../../../outside.png", "/etc/hostname", "images/missing.png", "images/a.png"))
    images = _extract(raw, body)
    assert [im.reason for im in images] == [
        Reason.REMOTE_URL_NOT_FETCHED, Reason.REMOTE_URL_NOT_FETCHED, Reason.REMOTE_URL_NOT_FETCHED,
        Reason.PATH_OUTSIDE_RAW, Reason.PATH_OUTSIDE_RAW, Reason.IMAGE_MISSING, None]
    assert all(im.text == DESCRIPTION for im in images)  # kept for the quarantine report
    assert [im.image_path is None for im in images] == [True] * 6 + [False]
    assert [im.id for im in images] == [f"html/shop/page_0001.html#img{k}" for k in range(7)]


def test_image_without_any_text_has_no_surrounding_text(raw: Path):
    im = _one(raw, '<div><img src="images/a.png"></div>')
    assert (im.reason, im.text) == (Reason.NO_SURROUNDING_TEXT, None)


def test_lazy_loaded_src_and_missing_src(raw: Path):
    images = _extract(raw, f'<div><img data-src="images/c.png"><p>{DESCRIPTION}</p></div>'
                           f'<div><img alt="没有地址"><p>{DESCRIPTION}</p></div>')
    assert images[0].image_path == (raw / "html/shop/images/c.png").resolve()
    assert images[1].reason is Reason.IMAGE_MISSING


def test_extraction_is_deterministic(raw: Path):
    body = f'<figure><img src="images/a.png"><figcaption>{DESCRIPTION}</figcaption></figure>'
    assert _extract(raw, body) == _extract(raw, body)
