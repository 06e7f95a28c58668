"""Image + surrounding text from crawled pages: each layout, the discarded page text, page
encodings (WHATWG labels; hostile ones ignored), the reasons for pages and images that yield no
pair, and galleries of thousands of images."""

from __future__ import annotations

import encodings.aliases
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode

from m6_pipeline.corpus.config import PairText
from m6_pipeline.corpus.html_encoding import decode_html
from m6_pipeline.corpus.reasons import Reason
from m6_pipeline.corpus.webpage_pairs import (
    ImageAncestry,
    PageImage,
    extract_page_pairs,
    visible_text,
)

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


# -- charset labels: only WHATWG text encodings; anything else is ignored, never raised --------

FIGURE = f'<figure><img src="images/a.png"><figcaption>{DESCRIPTION}</figcaption></figure>'
# codecs.lookup knows these, but they are no text encodings: bytes.decode raises LookupError or
# UnicodeError (not UnicodeDecodeError) for them; plus an unknown label and "replacement" ones
HOSTILE_LABELS = ("rot13", "base64", "undefined", "zlib", "hex", "bz2", "uu", "quopri", "utf-7",
                  "punycode", "unicode_escape", "no-such-charset", "iso-2022-kr", "hz-gb-2312")


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_charset_label_is_ignored(raw: Path, label: str, encoding: str):
    images = _extract(raw, FIGURE, encoding=encoding, charset=label)
    assert [(im.text, im.reason) for im in images] == [(DESCRIPTION, None)]


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_label_on_undecodable_bytes_is_one_unparseable_record(raw: Path, label: str):
    path = raw / "html/shop/broken.html"
    path.write_bytes(f'<html><head><meta charset="{label}"></head><body>'.encode()
                     + b"\x80\x80\xff<img src='images/a.png'></body></html>")
    images = extract_page_pairs(path.read_bytes(), path, raw, PAIR_TEXT)
    assert [(im.id, im.reason) for im in images] == [("html/shop/broken.html#page", Reason.PAGE_UNPARSEABLE)]
    assert f"charset {label!r} ignored" in images[0].detail


# every name Python's codecs answer to, text encoding or not: a <meta> may carry any of them
PYTHON_CODEC_NAMES = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values()))


def test_decode_html_never_raises_on_any_python_codec_label():
    raised = {}
    for label in PYTHON_CODEC_NAMES:
        head = f'<html><head><meta charset="{label}"></head><body>'.encode()
        for body in (DESCRIPTION.encode("utf-8"), DESCRIPTION.encode("gbk"), b"\x80\x80\xff\x00\xfe"):
            try:
                decode_html(head + body)
            except Exception as exc:  # noqa: BLE001 - the test is that nothing escapes
                raised[label] = repr(exc)
    assert not raised


@settings(max_examples=200, deadline=None)
@given(label=st.from_regex(r"[A-Za-z0-9_.:\-]{1,24}", fullmatch=True), body=st.binary(max_size=300),
       http_equiv=st.booleans())
def test_any_label_and_bytes_never_raise(label: str, body: bytes, http_equiv: bool):
    meta = (f'<meta http-equiv="Content-Type" content="text/html; charset={label}">' if http_equiv
            else f"<meta charset={label}>")
    data = f"<html><head>{meta}</head><body>".encode() + body + b"<img src='a.png'></body></html>"
    images = extract_page_pairs(data, Path("/nonexistent/raw/html/p.html"), Path("/nonexistent/raw"),
                                PAIR_TEXT)
    assert images and all(isinstance(im, PageImage) for im in images)


WINDOWS_1252_TEXT = "Café – “naïve” price €5"  # – “ ” € are windows-1252 bytes, invalid as UTF-8


@pytest.mark.parametrize(("label", "text", "encoding"), [
    ("gb2312", DESCRIPTION, "gbk"),
    ("GB_2312-80", DESCRIPTION, "gbk"),
    ("x-gbk", DESCRIPTION, "gbk"),
    ("gb18030", "𠀀" + DESCRIPTION, "gb18030"),  # a four-byte GB18030 character
    ("latin1", WINDOWS_1252_TEXT, "cp1252"),
    ("ISO-8859-1", WINDOWS_1252_TEXT, "cp1252"),
    ("us-ascii", WINDOWS_1252_TEXT, "cp1252"),
    ("big5", "這款紅色連衣裙採用純棉面料", "big5"),
    ("shift_jis", "夏の新作ワンピース", "cp932"),
    ("euc-kr", "여름 신상품 원피스", "euc_kr"),
    ("koi8-r", "Летнее платье", "koi8_r"),
    ("windows-1251", "Летнее платье", "cp1251"),
    ("utf-16", DESCRIPTION, "utf-8"),  # a UTF-16 label in an ASCII-readable <meta> means UTF-8
])
def test_whatwg_label_decodes_its_encoding(raw: Path, label: str, text: str, encoding: str):
    path = raw / "html/shop/labelled.html"
    path.write_bytes(f'<html><head><meta charset="{label}"></head><body><figure><img src="images/a.png">'
                     f"<figcaption>{text}</figcaption></figure></body></html>".encode(encoding))
    images = extract_page_pairs(path.read_bytes(), path, raw, PAIR_TEXT)
    assert [(im.text, im.reason) for im in images] == [(text, None)]


def test_http_equiv_content_type_charset(raw: Path):
    path = raw / "html/shop/legacy.html"
    path.write_bytes(('<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5">'
                      '</head><body><figure><img src="images/a.png"><figcaption>這款紅色連衣裙'
                      "</figcaption></figure></body></html>").encode("big5"))
    images = extract_page_pairs(path.read_bytes(), path, raw, PAIR_TEXT)
    assert [im.text for im in images] == ["這款紅色連衣裙"]  # as GB18030 these bytes read otherwise


def test_windows_1252_bytes_python_leaves_undefined_decode_as_browsers_do():
    text, encoding = decode_html(b'<meta charset="latin1"><p>\x81\x8d\x80</p>')
    assert (encoding, text) == ("cp1252", '<meta charset="latin1"><p>\x81\x8d€</p>')


# -- thousands of images: one pass over the page, results as for each image alone ------------

BLOCKS = (  # each resolves its images' text inside itself, so it reads the same alone or in a page
    '<div class="goods"><a href="/item"><img src="images/a.png" alt="款{k}"></a><p>{d}</p></div>',
    '<figure><img src="images/b.png"><figcaption>第{k}号：{d}</figcaption></figure>',
    '<div class="gallery"><img src="images/c.png"><img src="images/c.png"></div>',  # no text
    '<figure><img src="images/a.png"><img src="images/b.png"><figcaption>图集{k}</figcaption></figure>',
    '<ul><li><span class="pic"><img data-src="images/c.png"></span><em>帽子{k}</em></li></ul>',
)


def _records(images: list[PageImage]) -> list[tuple]:
    return [(im.image_ref, im.text, im.reason, im.detail) for im in images]


def test_page_of_3000_images_reads_each_block_as_alone(raw: Path):
    blocks = []
    while sum(block.count("<img") for block in blocks) < 3000:
        blocks.append(BLOCKS[len(blocks) % len(BLOCKS)].format(k=len(blocks), d=DESCRIPTION))
    images = _extract(raw, "<main>" + "".join(blocks) + "</main>", name="html/shop/big.html")
    expected = [r for block in blocks for r in _records(_extract(raw, block, name="html/shop/one.html"))]
    assert len(images) == len(expected) == 3000
    assert [im.id for im in images] == [f"html/shop/big.html#img{k}" for k in range(3000)]
    assert _records(images) == expected


def test_gallery_of_3000_bare_images_keeps_each_alt_only(raw: Path):
    imgs = "".join(f'<img src="images/a.png" alt="图{k}">' for k in range(3000))
    images = _extract(raw, f'<div class="gallery">{imgs}</div><p>{DESCRIPTION}</p>')
    assert [im.text for im in images] == [f"图{k}" for k in range(3000)]  # never a neighbour's text


def test_figure_of_3000_images_gives_each_the_caption(raw: Path):
    imgs = '<img src="images/b.png">' * 3000
    images = _extract(raw, f"<figure>{imgs}<figcaption>{DESCRIPTION}</figcaption></figure>")
    assert [im.id for im in images] == [f"html/shop/page_0001.html#img{k}" for k in range(3000)]
    assert {(im.text, im.reason) for im in images} == {(DESCRIPTION, None)}


def test_image_deep_in_nested_wrappers(raw: Path):
    depth = 3000  # deeper than Python's recursion limit: every walk up the tree is a loop
    body = "<div>" * depth + '<img src="images/a.png"><p>' + DESCRIPTION + "</p>" + "</div>" * depth
    images = _extract(raw, "<nav>菜单</nav>" + body * 5)
    assert [(im.text, im.reason) for im in images] == [(DESCRIPTION, None)] * 5


# ImageAncestry against asking each node directly, as extraction did before it (quadratic)
_TREE_TAGS = ("div", "span", "a", "p", "li", "section", "figure", "figcaption", "nav", "header",
              "footer", "main")
_LEAVES = st.sampled_from(['<img src="images/a.png">', '<img src="images/b.png" alt="乙">', "短",
                           DESCRIPTION, ""])
_HTML_TREES = st.recursive(_LEAVES, lambda children: st.builds(
    lambda tag, inner: f"<{tag}>{''.join(inner)}</{tag}>", st.sampled_from(_TREE_TAGS),
    st.lists(children, max_size=4)), max_leaves=40)


def _direct_image_count(node: LexborNode) -> int:
    if node.tag == "img":
        return 1
    return len(node.css("img")) if node.is_element_node else 0


def _direct_chrome(img: LexborNode) -> str | None:
    node = img.parent
    while node is not None and node.tag not in ("nav", "header", "footer"):
        node = node.parent
    return None if node is None else node.tag


def _direct_caption(img: LexborNode) -> str:
    node = img.parent
    while node is not None and node.tag not in ("body", "html", "main", "-document"):
        if node.tag == "figure":
            caption = next((c for c in node.iter() if c.tag == "figcaption"), None)
            return visible_text(caption) if caption is not None else ""
        node = node.parent
    return ""


@settings(max_examples=150, deadline=None)
@given(body=_HTML_TREES)
def test_image_ancestry_matches_asking_each_node(body: str):
    tree = LexborHTMLParser(_page(body))
    images = tree.css("img")
    ancestry = ImageAncestry(images)
    for node in tree.root.traverse(include_text=True):
        assert ancestry.image_count(node) == min(2, _direct_image_count(node)), node.html
    for img in images:
        assert ancestry.chrome_ancestor(img) == _direct_chrome(img)
        assert ancestry.figure_caption(img) == _direct_caption(img)
