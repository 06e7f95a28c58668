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

Extraction is linear in the page: what an image's ancestors hold (other images, page chrome, an
enclosing <figure>) is worked out once per page in `ImageAncestry`, not once per image, so a
gallery of 20,000 images costs 20,000 times one image (benchmarks/page_extraction.py).

The page's bytes are decoded as browsers decode them (`html_encoding`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser, LexborNode

from m6_pipeline.corpus.config import PairText
from m6_pipeline.corpus.html_encoding import decode_html
from m6_pipeline.corpus.image_paths import RejectedReference, resolve_image_reference
from m6_pipeline.corpus.reasons import Reason

_REMOVED = "script, style, noscript, template"
_CHROME = frozenset({"nav", "header", "footer"})
_SKIPPED_TEXT = _CHROME | {"script", "style", "noscript", "template"}
_TOP = frozenset({"body", "html", "main", "-document"})  # never climb into these: page-wide text
_MAX_CLIMB = 3  # img -> wrapper -> wrapper's wrapper: deeper siblings belong to something else
_MAX_SIBLINGS = 3  # texts looked at each way: farther ones describe something else
_LAZY_SRC = ("data-src", "data-original", "data-lazy-src")  # lazy-loading pages leave src empty
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
    source = page_source(relative)
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
    ancestry = ImageAncestry(images)
    return [_page_image(img, f"{relative}#img{k}", source, referrer, raw_root, pair_text, ancestry)
            for k, img in enumerate(images)]


def _page_image(img: LexborNode, image_id: str, source: str, referrer: Path, raw_root: Path,
                pair_text: PairText, ancestry: ImageAncestry) -> PageImage:
    ref = _image_src(img)
    chrome = ancestry.chrome_ancestor(img)
    text = None if chrome else surrounding_text(img, pair_text, ancestry)
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


def surrounding_text(img: LexborNode, pair_text: PairText, ancestry: ImageAncestry) -> str | None:
    """The caption or adjacent text of `img` with its alt in front; None when there is none.

    `ancestry`: the ImageAncestry of all the images of img's page.
    """
    alt = _collapse(img.attributes.get("alt") or "")
    chosen = ancestry.figure_caption(img) or _adjacent_text(img, pair_text, ancestry) or ""
    if alt and alt not in chosen:
        chosen = f"{alt} {chosen}".strip()
    return chosen or None


_UP = object()  # ImageAncestry._nearest: this node says nothing, ask its parent


def _figure_or_stop(node: LexborNode) -> LexborNode | None | object:
    """The node if it is a <figure>; None (no figure) at page-wide elements; else _UP."""
    if node.tag == "figure":
        return node
    return None if node.tag in _TOP else _UP


class ImageAncestry:
    """What the ancestors of one page's <img> elements hold, answered for all of them at once.

    Asked per image (`node.css("img")` on a wrapper, a walk to the root, a figure's children
    scanned for its caption) these cost images x page size, quadratic in a gallery's images.
    Here every answer is kept per node, so each ancestor is visited a bounded number of times
    for the whole page. Nodes are keyed by `mem_id`, the lexbor node's address: the same for
    every Python wrapper of one node (`img.parent.mem_id == img.parent.mem_id`) while the tree
    lives, and no node is added or removed once the images are listed.
    """

    def __init__(self, images: list[LexborNode]):
        # element -> how many of `images` it holds, capped at 2: callers ask "any?" and "more
        # than one?", and with the cap each node is raised at most twice (0 -> 1 -> 2)
        self._images_within: dict[int, int] = {}
        self._chrome: dict[int, str | None] = {}
        self._figure: dict[int, LexborNode | None] = {}
        self._captions: dict[int, str] = {}
        for img in images:
            node = img.parent
            while node is not None:
                held = self._images_within.get(node.mem_id, 0)
                if held == 2:  # and so have all its ancestors
                    break
                self._images_within[node.mem_id] = held + 1
                node = node.parent

    def image_count(self, node: LexborNode) -> int:
        """<img> elements in `node`, itself included: 0, 1, or 2 for two or more."""
        if node.tag == "img":
            return 1
        return self._images_within.get(node.mem_id, 0) if node.is_element_node else 0

    def chrome_ancestor(self, img: LexborNode) -> str | None:
        """The tag of the innermost <nav>, <header> or <footer> around `img`, else None."""
        return self._nearest(self._chrome, img.parent, lambda n: n.tag if n.tag in _CHROME else _UP)

    def figure_caption(self, img: LexborNode) -> str:
        """Text of the <figcaption> of the innermost <figure> around `img` below the page-wide
        elements (_TOP); "" when there is none."""
        figure = self._nearest(self._figure, img.parent, _figure_or_stop)
        if figure is None:
            return ""
        if figure.mem_id not in self._captions:
            caption = next((child for child in figure.iter() if child.tag == "figcaption"), None)
            self._captions[figure.mem_id] = visible_text(caption) if caption is not None else ""
        return self._captions[figure.mem_id]

    @staticmethod
    def _nearest(memo: dict[int, Any], node: LexborNode | None,
                 own: Callable[[LexborNode], Any]) -> Any:
        """own(n) of the nearest n among `node` and its ancestors for which it is not _UP (None
        past the root), kept in `memo` for every node on the way."""
        path, answer = [], None
        while node is not None:
            if node.mem_id in memo:
                answer = memo[node.mem_id]
                break
            path.append(node.mem_id)
            said = own(node)
            if said is not _UP:
                answer = said
                break
            node = node.parent
        memo.update(dict.fromkeys(path, answer))
        return answer


def _adjacent_text(img: LexborNode, pair_text: PairText, ancestry: ImageAncestry) -> str:
    anchor = img
    for _ in range(_MAX_CLIMB):
        fallback = ""
        for forward in (True, False):  # following text first: captions mostly sit below
            for text in _sibling_texts(anchor, forward, ancestry):
                # a substantial sibling beats a short one (a price tag next to the description)
                if len(text) >= pair_text.min_text_chars:
                    return text
                fallback = fallback or text
        if fallback:
            return fallback
        parent = anchor.parent
        if parent is None or parent.tag in _TOP or parent.tag in _SKIPPED_TEXT \
                or ancestry.image_count(parent) > 1:
            return ""
        anchor = parent
    return ""


def _sibling_texts(anchor: LexborNode, forward: bool, ancestry: ImageAncestry) -> Iterator[str]:
    """Texts of up to _MAX_SIBLINGS siblings in one direction, stopping at one with an image."""
    node = anchor.next if forward else anchor.prev
    found = 0
    while node is not None and found < _MAX_SIBLINGS:
        if node.is_element_node and ancestry.image_count(node):
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


def _relative_page(page_path: Path, raw_root: Path) -> str:
    page = os.path.abspath(page_path)
    for root in (os.path.abspath(raw_root), os.path.realpath(raw_root)):
        if page.startswith(root.rstrip(os.sep) + os.sep):
            return Path(os.path.relpath(page, root)).as_posix()
    return Path(page_path).name


def page_source(relative: str) -> str:
    """The source of a page from its path under raw: the first directory under html/ ("shop"
    for html/shop/page_0001.html), else "html"."""
    parts = relative.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "html" else "html"
