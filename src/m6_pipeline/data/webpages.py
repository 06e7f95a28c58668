"""Generated "crawled" shop pages: the stand-in for the paper's crawled-webpage image-text pairs.

The catalogue items held back from `items.jsonl` are published here, `items_per_page` to a
page, each in one of four layouts so pair extraction meets the shapes real pages have:

- `figure`: `<figure><img alt=title><figcaption>description</figcaption></figure>`
- `alt_then_p`: `<img alt=title>` followed by an adjacent `<p>` with the description
- `p_then_img`: `<div class="item"><p>description</p><img></div>` (text before the image)
- `alt_only`: the description only in the `alt` attribute

Around them sits what a crawl brings along and extraction must discard (§2.3: "other sentences
in the webpages are discarded"): <script>/<style>, a <nav> with 16/32 px icons (below the
5000-pixel rule), remote `https://` and `//` images, ads, shipping notes, a footer. Hazards are
planted deterministically: a `../` path escape, an absolute path, a missing file, a page with no
image, one image saved under two names on two pages (pHash dedup), one page encoded in GBK.
`html/shop/.pages.json` records what is where, for tests and reports.
"""

from __future__ import annotations

import html
import json
import random
from collections.abc import Sequence
from math import ceil
from pathlib import Path

from PIL import Image, ImageDraw

from m6_pipeline.corpus.config import CatalogueSpec
from m6_pipeline.data.catalogue import CatalogueItem, png_bytes, write_atomically

SHOP_DIR = Path("html/shop")
LAYOUTS = ("figure", "alt_then_p", "p_then_img", "alt_only")
ICON_SIZES = {"home": 16, "search": 16, "cart": 16, "user": 16, "logo": 32}  # side in pixels
ESCAPE_SRC = "../../../../etc/passwd"
ABSOLUTE_SRC = "/etc/hostname"

_SHOPS = ("优品生活馆", "乐购好物店", "潮流衣橱", "居家百货铺", "小镇杂货铺")
_ADS = (
    "全场满199元包邮，新用户首单立减20元。", "关注店铺领取5元无门槛优惠券，每天限量发放。",
    "双十一预售开启，付定金享受折上折。", "会员积分可以抵扣现金，一百积分抵一元。",
    "扫码下载手机客户端，领取专属新人礼包。", "本周末全场八折，部分商品买一送一。",
)
_SHIPPING = (
    "默认发中通快递，偏远地区请联系客服补运费。", "下单后48小时内发货，节假日顺延。",
    "收到商品请当面验货，如有破损请拒收并联系我们。", "支持七天无理由退换货，退货运费由买家承担。",
)
_HAZARD_TEXTS = (
    "店长推荐：本周爆款好物，数量有限先到先得。", "新品到货，欢迎进店选购，老顾客享受九折优惠。",
    "热销单品持续补货中，喜欢的朋友抓紧下单。",
)
_NOTICE_PAGE = ("配送与售后说明", (
    "本店所有商品均为正品，支持专柜验货。", "订单付款后48小时内发货，预售商品以页面说明为准。",
    "如需开具发票，请在下单时备注抬头和税号。", "客服在线时间为每天九点至二十二点，节假日不休息。",
))
_STYLE = """body{margin:0;font-family:"Microsoft YaHei","微软雅黑",Arial,sans-serif;color:#333}
.top-nav{background:#f40;padding:4px 12px}.top-nav a{color:#fff;margin-right:16px}
.product,.goods,.item,.pic{display:inline-block;width:220px;margin:8px;vertical-align:top}
.price{color:#f40;font-weight:bold}footer{background:#eee;font-size:12px;padding:12px}"""
_SCRIPT_HEAD = """var SHOP_CONFIG = {{name: "{shop}", cartTip: "已加入购物车", loginTip: "请先登录后再购买"}};
function addCart(id) {{
  if (!window.currentUser) {{ alert(SHOP_CONFIG.loginTip); return false; }}
  console.log("加入购物车: " + id); return true;
}}"""
_SCRIPT_TAIL = """(function () {{
  var t = new Date().getTime();
  document.addEventListener("DOMContentLoaded", function () {{
    console.log("页面加载完成，用时" + (new Date().getTime() - t) + "毫秒");
  }});
  window._trackPage = "{page}";
}})();"""


def _icon(name: str) -> Image.Image:
    """A small flat icon; these are below the 5000-pixel rule and must not become pairs."""
    side = ICON_SIZES[name]
    image = Image.new("RGB", (side, side), (255, 68, 0))
    draw = ImageDraw.Draw(image)
    s = side - 1
    if name == "home":
        draw.polygon([(s / 2, 2), (s - 1, s / 2), (1, s / 2)], fill="white")
        draw.rectangle([s / 4, s / 2, 3 * s / 4, s - 2], fill="white")
    elif name == "search":
        draw.ellipse([2, 2, s * 0.65, s * 0.65], outline="white", width=2)
        draw.line([s * 0.6, s * 0.6, s - 2, s - 2], fill="white", width=2)
    elif name == "cart":
        draw.line([(1, 3), (4, 3), (6, s - 5), (s - 2, s - 5), (s - 1, 5), (5, 5)],
                  fill="white", width=2)
        draw.ellipse([5, s - 4, 8, s - 1], fill="white")
        draw.ellipse([s - 6, s - 4, s - 3, s - 1], fill="white")
    elif name == "user":
        draw.ellipse([s / 3, 2, 2 * s / 3, s / 2], fill="white")
        draw.pieslice([2, s / 2, s - 2, s + s / 2], 180, 360, fill="white")
    else:  # logo: a shopping bag
        draw.rectangle([6, 10, s - 6, s - 4], fill="white")
        draw.arc([11, 3, s - 11, 17], 180, 360, fill="white", width=2)
    return image


def _product_html(layout: str, src: str, title: str, text: str, price: str) -> str:
    src, title, text = html.escape(src), html.escape(title), html.escape(text)
    if layout == "figure":
        return (f'<figure class="product"><img src="{src}" alt="{title}">'
                f"<figcaption>{text}</figcaption></figure>")
    if layout == "alt_then_p":
        return (f'<div class="goods"><img src="{src}" alt="{title}"><p>{text}</p>'
                f'<span class="price">&yen;{price}</span></div>')
    if layout == "p_then_img":
        return f'<div class="item"><p>{text}</p><img src="{src}" alt=""></div>'
    if layout == "alt_only":
        return f'<div class="pic"><img src="{src}" alt="{text}"></div>'
    raise ValueError(f"unknown layout {layout!r}: expected one of {LAYOUTS}")


def _page_html(rng: random.Random, page: str, charset: str, products: list[str], shop: str) -> str:
    links = (("home", "首页"), ("search", "搜索"), ("cart", "购物车"), ("user", "我的"))
    nav = "\n".join(f'  <a href="/{name}.html"><img src="icons/{name}.png" '
                    f'width="{ICON_SIZES[name]}" height="{ICON_SIZES[name]}" alt="{label}">{label}</a>'
                    for name, label in links)
    body = "\n".join(f"  {p}" for p in products)
    banner = rng.randint(1, 40)
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="{charset}">
<title>{shop} - 热卖商品 第{page}页</title>
<meta name="keywords" content="{shop},网购,特价,包邮">
<style>
{_STYLE}
</style>
<script type="text/javascript">
{_SCRIPT_HEAD.format(shop=shop)}
</script>
</head>
<body>
<nav class="top-nav">
{nav}
</nav>
<header><img src="icons/logo.png" width="32" height="32" alt="{shop}"><h1>{shop}</h1></header>
<div class="banner"><img src="https://cdn.example.com/banner/{banner:03d}.jpg" alt="限时特惠"></div>
<p class="notice">{rng.choice(_ADS)}</p>
<main>
{body}
</main>
<aside><img src="//cdn.example.com/ads/side_{banner % 7}.jpg" alt="广告">
<p>{rng.choice(_ADS)}</p></aside>
<footer>
<p>{rng.choice(_SHIPPING)}</p>
<p>客服热线：400-820-{rng.randint(1000, 9999)}（每天9:00-22:00）</p>
<p>&copy; 2021 {shop} 版权所有</p>
</footer>
<script>
{_SCRIPT_TAIL.format(page=page)}
</script>
</body>
</html>
"""


def _notice_html(shop: str) -> str:
    """A page with text only (not even icons): it must yield no pair at all."""
    title, paragraphs = _NOTICE_PAGE
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<title>{shop} - {title}</title>
</head>
<body>
<nav><a href="/home.html">首页</a> <a href="/help.html">帮助中心</a></nav>
<h1>{title}</h1>
{body}
<footer><p>&copy; 2021 {shop} 版权所有</p></footer>
</body>
</html>
"""


def _remove_stale(folder: Path, pattern: str, keep: set[str]) -> None:
    for path in folder.glob(pattern):
        if path.name not in keep:
            path.unlink()


def generate_webpages(raw_dir: Path, spec: CatalogueSpec, items: Sequence[CatalogueItem]) -> int:
    """Write the shop pages for `items` (the webpage-only catalogue items); returns the page count.

    Pages are `html/shop/page_0001.html` ... with `spec.items_per_page` products each, then one
    text-only notice page; images go to `html/shop/images/<key>.png` (`spec.image_size` px).
    """
    shop_dir = Path(raw_dir) / SHOP_DIR
    for sub in ("images", "icons"):
        (shop_dir / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"webpages:{spec.seed}")
    shop = rng.choice(_SHOPS)
    per_page = max(1, spec.items_per_page)
    n_product_pages = max(1, ceil(len(items) / per_page))
    # hazards sit on fixed pages (wrapping when there are few); the repost goes on another page
    escape_page, absolute_page, missing_page = 0, 1 % n_product_pages, 2 % n_product_pages
    gbk_page = min(1, n_product_pages - 1)
    repost_page = n_product_pages - 1 if n_product_pages > 1 else 0
    repost_item = items[0] if items else None

    images = {f"{item.key}.png": item.png(spec.image_size) for item in items}
    if repost_item is not None:
        images[f"repost_{repost_item.key}.png"] = images[f"{repost_item.key}.png"]
    for name, data in images.items():
        write_atomically(shop_dir / "images" / name, data)
    for name in ICON_SIZES:
        write_atomically(shop_dir / "icons" / f"{name}.png", png_bytes(_icon(name)))

    pages_meta = []
    for p in range(n_product_pages):
        page_items = items[p * per_page:(p + 1) * per_page]
        products, entries, hazards = [], [], []
        for j, item in enumerate(page_items):
            layout = LAYOUTS[(p * per_page + j) % len(LAYOUTS)]
            price = f"{rng.randint(19, 599)}.{rng.choice(('00', '90', '99'))}"
            src = f"images/{item.key}.png"
            products.append(_product_html(layout, src, item.title, item.text, price))
            entries.append({"id": item.id, "image": src, "layout": layout})

        def plant(kind: str, layout: str, src: str, title: str, text: str) -> None:
            block = _product_html(layout, src, title, text, "99.00")
            products.insert(rng.randint(0, len(products)), block)
            hazards.append({"kind": kind, "image": src})

        if p == escape_page:
            plant("path_escape", "figure", ESCAPE_SRC, "店长推荐", _HAZARD_TEXTS[0])
        if p == absolute_page:
            plant("absolute_path", "p_then_img", ABSOLUTE_SRC, "", _HAZARD_TEXTS[1])
        if p == missing_page:
            plant("missing_file", "alt_then_p", f"images/missing_{p + 1:04d}.png", "新品",
                  _HAZARD_TEXTS[2])
        if p == repost_page and repost_item is not None:
            plant("duplicate_image", "figure", f"images/repost_{repost_item.key}.png",
                  repost_item.title, repost_item.text)
            entries.append({"id": repost_item.id, "image": f"images/repost_{repost_item.key}.png",
                            "layout": "figure"})
        charset = "gbk" if p == gbk_page else "utf-8"
        pages_meta.append({"file": f"page_{p + 1:04d}.html", "encoding": charset, "items": entries,
                           "hazards": hazards})
        write_atomically(shop_dir / pages_meta[-1]["file"],
                         _page_html(rng, f"{p + 1}", charset, products, shop).encode(charset))

    notice = f"page_{n_product_pages + 1:04d}.html"
    write_atomically(shop_dir / notice, _notice_html(shop).encode("utf-8"))
    pages_meta.append({"file": notice, "encoding": "utf-8", "items": [],
                       "hazards": [{"kind": "no_images"}]})

    _remove_stale(shop_dir, "page_*.html", {m["file"] for m in pages_meta})
    _remove_stale(shop_dir / "images", "*.png", set(images))
    meta = {"shop": shop, "image_size": spec.image_size, "pages": pages_meta}
    write_atomically(shop_dir / ".pages.json",
                     json.dumps(meta, ensure_ascii=False, indent=1).encode("utf-8"))
    return len(pages_meta)
