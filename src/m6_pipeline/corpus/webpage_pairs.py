"""Image-text pairs from crawled pages (§2.3: "For images and texts in crawled webpages, we
only consider images and their surrounding text as relevant image-text pairs. Other sentences
in the webpages are discarded.").

One `PageImage` per <img>, in document order, with the image's surrounding text:

1. the <figcaption> of the enclosing <figure>;
2. else the adjacent text: the next sibling with text, else the previous one, in the same
   parent, never crossing a sibling that holds another image; when the image sits alone in a
   small wrapper (<a>, <span>, <div class="pic">) the search climbs to the wrapper's siblings;
3. the `alt` attribute is always put in front when it is not already part of that text.

Text in <script>, <style>, <noscript>, <template> (removed before extraction), <nav>, <header>
and <footer> (page chrome) is never used; an image inside the chrome is a logo or an icon and
gets NO_SURROUNDING_TEXT. The text is raw: the caller normalises and length-checks it.
A page that yields no image is one record (PAGE_WITHOUT_IMAGES or PAGE_UNPARSEABLE), so every
page file is accounted for in the quarantine.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser, LexborNode

from m6_pipeline.corpus.config import PairText
from m6_pipeline.corpus.image_paths import RejectedReference, resolve_image_reference
from m6_pipeline.corpus.reasons import Reason

_REMOVED = "script, style, noscript, template"
_CHROME = frozenset({"nav", "header", "footer"})
_SKIPPED_TEXT = _CHROME | {"script", "style", "noscript", "template"}
_TOP = frozenset({"body", "html", "main", "-document"})  # never climb into these: page-wide text
_MAX_CLIMB = 3  # img -> wrapper -> wrapper's wrapper: deeper siblings belong to something else
_MAX_SIBLINGS = 3  # texts looked at each way: farther ones describe something else
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src")  # lazy-loading pages leave src empty
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_CHARSET_SNIFF_BYTES = 4096
# WHATWG maps these labels to the GBK decoder; GB18030 is its superset and also decodes GBK
_GB_LABELS = {"gbk", "gb2312", "gb_2312", "gb_2312-80", "x-gbk", "chinese", "csgb2312", "gb18030"}


@dataclass(frozen=True)
class PageImage:
    """One <img> of a page (or the whole page when it yields none) and its surrounding text.

    id: f"{page path relative to raw}#img{k}" (k: 0-based <img> index) or "...#page".
    source: first directory under html/ ("shop" for html/shop/page_0001.html), else "html".
    image_ref: the raw src; image_path: the resolved file inside raw, or None when rejected.
    reason: None for a candidate pair, else why it leaves the corpus; detail: the evidence.
    """

    id: str
    source: str
    image_ref: str | None
    image_path: Path | None
    text: str | None
    reason: Reason | None = None
    detail: str | None = None


def extract_page_pairs(html_bytes: bytes, page_path: Path, raw_root: Path,
                       pair_text: PairText) -> list[PageImage]:
    """All image candidates of one page (see the module docstring); never raises on bad input."""
    relative = _relative_page(page_path, raw_root)
    source = _source_of(relative)
    html, why = decode_html(html_bytes)
    if html is None:
        return [PageImage(f"{relative}#page", source, None, None, None,
                          Reason.PAGE_UNPARSEABLE, f"{relative}: {why}")]
    tree = LexborHTMLParser(html)
    for node in tree.css(_REMOVED):
        node.decompose()
    images = tree.css("img")
    if not images:
        return [PageImage(f"{relative}#page", source, None, None, None,
                          Reason.PAGE_WITHOUT_IMAGES, f"{relative}: no <img> in the page")]
    referrer = Path(page_path).parent
    return [_page_image(img, f"{relative}#img{k}", source, referrer, raw_root, pair_text)
            for k, img in enumerate(images)]


def _page_image(img: LexborNode, image_id: str, source: str, referrer: Path, raw_root: Path,
                pair_text: PairText) -> PageImage:
    ref = _image_src(img)
    chrome = _chrome_ancestor(img)
    text = None if chrome else surrounding_text(img, pair_text)
    try:
        path = resolve_image_reference(ref, referrer, raw_root)
    except RejectedReference as rejected:
        return PageImage(image_id, source, ref, None, text, rejected.reason, rejected.detail)
    if chrome:
        return PageImage(image_id, source, ref, path, None, Reason.NO_SURROUNDING_TEXT,
                         f"image {ref!r} sits in the page's <{chrome}> (logo or icon)")
    if not text:
        return PageImage(image_id, source, ref, path, None, Reason.NO_SURROUNDING_TEXT,
                         f"image {ref!r} has no alt, caption or adjacent text")
    return PageImage(image_id, source, ref, path, text)


def surrounding_text(img: LexborNode, pair_text: PairText) -> str | None:
    """The caption or adjacent text of `img` with its alt in front; None when there is none."""
    alt = _collapse(img.attributes.get("alt") or "")
    chosen = _figure_caption(img) or _adjacent_text(img, pair_text) or ""
    if alt and alt not in chosen:
        chosen = f"{alt} {chosen}".strip()
    return chosen or None


def _figure_caption(img: LexborNode) -> str:
    node = img.parent
    while node is not None and node.tag not in _TOP:
        if node.tag == "figure":
            for child in node.iter():
                if child.tag == "figcaption":
                    return visible_text(child)
            return ""
        node = node.parent
    return ""


def _adjacent_text(img: LexborNode, pair_text: PairText) -> str:
    anchor = img
    for _ in range(_MAX_CLIMB):
        fallback = ""
        for forward in (True, False):  # following text first: captions mostly sit below
            for text in _sibling_texts(anchor, forward):
                # a substantial sibling beats a short one (a price tag next to the description)
                if len(text) >= pair_text.min_text_chars:
                    return text
                fallback = fallback or text
        if fallback:
            return fallback
        parent = anchor.parent
        if parent is None or parent.tag in _TOP or parent.tag in _SKIPPED_TEXT \
                or _image_count(parent) > 1:
            return ""
        anchor = parent
    return ""


def _sibling_texts(anchor: LexborNode, forward: bool) -> Iterator[str]:
    """Texts of up to _MAX_SIBLINGS siblings in one direction, stopping at one with an image."""
    node = anchor.next if forward else anchor.prev
    found = 0
    while node is not None and found < _MAX_SIBLINGS:
        if node.is_element_node and _image_count(node):
            return
        text = visible_text(node)
        if text:
            found += 1
            yield text
        node = node.next if forward else node.prev


def visible_text(node: LexborNode) -> str:
    """Text of `node` and its descendants, whitespace collapsed, skipping chrome and scripts."""
    parts: list[str] = []
    stack = [node]
    while stack:  # explicit stack: crawled pages can nest deeper than Python's recursion limit
        current = stack.pop()
        if current.is_text_node:
            parts.append(current.text_content or "")
        elif current.is_element_node and current.tag not in _SKIPPED_TEXT:
            stack.extend(reversed(list(current.iter(include_text=True))))
    return _collapse(" ".join(parts))


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _image_count(node: LexborNode) -> int:
    if node.tag == "img":
        return 1
    return len(node.css("img")) if node.is_element_node else 0


def _chrome_ancestor(img: LexborNode) -> str | None:
    node = img.parent
    while node is not None:
        if node.tag in _CHROME:
            return node.tag
        node = node.parent
    return None


def _image_src(img: LexborNode) -> str:
    attrs = img.attributes
    src = (attrs.get("src") or "").strip()
    if src:
        return src
    for name in _LAZY_SRC:
        if (attrs.get(name) or "").strip():
            return attrs[name].strip()
    srcset = (attrs.get("srcset") or "").strip()
    return srcset.split(",")[0].split()[0] if srcset else ""


def decode_html(data: bytes) -> tuple[str | None, str]:
    """(text, encoding used) of a page, or (None, why) when no encoding decodes it strictly.

    Order: byte-order mark; <meta charset> / http-equiv in the first 4 KiB; UTF-8; GB18030.
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                return None, f"{encoding} byte-order mark but invalid {encoding} ({exc.reason} at byte {exc.start})"
    declared = _declared_charset(data[:_CHARSET_SNIFF_BYTES])
    tried = []
    for encoding in dict.fromkeys(e for e in (declared, "utf-8", "gb18030") if e):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            tried.append(encoding)
    return None, (f"bytes decode as none of {', '.join(tried)}; re-save the page as UTF-8 or "
                  "declare its encoding in <meta charset>")


def _declared_charset(head: bytes) -> str | None:
    match = _META_CHARSET.search(head)
    if not match:
        return None
    label = match.group(1).decode("ascii", "ignore").lower()
    if label in _GB_LABELS:
        return "gb18030"
    try:
        return codecs.lookup(label).name
    except LookupError:  # an unknown label: browsers ignore it too
        return None


def _relative_page(page_path: Path, raw_root: Path) -> str:
    page = os.path.abspath(page_path)
    for root in (os.path.abspath(raw_root), os.path.realpath(raw_root)):
        if page.startswith(root.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(page, root)).as_posix()
    return Path(page_path).name


def _source_of(relative: str) -> str:
    parts = relative.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "html" else "html"
