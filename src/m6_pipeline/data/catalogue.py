"""A deterministic synthetic e-commerce catalogue: the stand-in for the paper's E-commerce pairs.

Each item is one product on a white background (Pillow polygons and ellipses), with a Chinese
title that states its attributes (`大号红色条纹连衣裙`) and a description of 10-100 words that
states them again amid template sentences on material, occasion, care and service. Attributes:
category x colour x pattern x size (10 x 11 x 5 x 3). Per-item jitter (position, scale,
proportions, rotation, mirroring, colour shade, pattern phase, shadow) keeps items apart under
a perceptual hash, and the few that still land within 4 bits of an earlier item are redrawn, so
the corpus stage's pHash dedup (distance <= 4) does not eat them.

Layout under the raw directory: `pairs/catalogue/items.jsonl` (`image` is relative to that file)
and `pairs/catalogue/images/<key>.png`. A `webpage_fraction` of items is held back from the
jsonl; `webpages.py` publishes those on crawled shop pages instead.
"""

from __future__ import annotations

import io
import json
import os
import random
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache
from math import cos, radians, sin
from pathlib import Path

import imagehash
import jieba
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from m6_pipeline.corpus.config import CatalogueSpec

CATEGORIES = ("T恤", "连衣裙", "高跟鞋", "背包", "帽子", "马克杯", "台灯", "手表", "雨伞", "运动鞋")
COLOURS: dict[str, tuple[int, int, int]] = {
    "红色": (210, 40, 40), "橙色": (240, 130, 30), "黄色": (238, 200, 35), "绿色": (50, 150, 60),
    "青色": (30, 170, 170), "蓝色": (40, 80, 200), "紫色": (130, 60, 170), "粉色": (240, 140, 170),
    "黑色": (35, 35, 35), "灰色": (128, 128, 128), "棕色": (130, 80, 45),
}
PATTERNS = ("纯色", "条纹", "格子", "圆点", "迷彩")
SIZES: dict[str, float] = {"小": 0.44, "中": 0.6, "大": 0.76}  # object side / image side
SIZE_WORDS = {"小": "小号", "中": "中号", "大": "大号"}

_SUPERSAMPLE = 2  # draw at 2x and average 2x2: anti-aliased edges without per-primitive AA
_MARGIN = 0.07  # fraction of the side kept white around object and shadow (white corners)
# bits; the corpus stage drops images within 4 of another (ImageRules.phash_max_distance)
MIN_PHASH_DISTANCE = 5
_MAX_REDRAWS = 20  # about 6 % of 3000 items need one redraw; needing 20 would mean a bug


# --- shapes: primitives in a unit box, x right, y down, centre (0, 0) ------------------------
# role: "body" adds to the object mask and takes the pattern, "hole" cuts the mask,
# "trim_light"/"trim_dark" add a part in a plain tone (a sole, a watch face, a pocket),
# "stroke" is a detail line (seam, rib, lace) in the outline colour.

def _arc(cx, cy, rx, ry, a0=0.0, a1=360.0, n=40):
    """n + 1 points on an ellipse from angle a0 to a1 (degrees, clockwise on screen)."""
    angles = [radians(a0 + (a1 - a0) * k / n) for k in range(n + 1)]
    return [(cx + rx * cos(a), cy + ry * sin(a)) for a in angles]


def _rect(x0, y0, x1, y1, r=0.0):
    if r <= 0:
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return (_arc(x1 - r, y0 + r, r, r, 270, 360, 6) + _arc(x1 - r, y1 - r, r, r, 0, 90, 6)
            + _arc(x0 + r, y1 - r, r, r, 90, 180, 6) + _arc(x0 + r, y0 + r, r, r, 180, 270, 6))


def _umbrella_canopy():
    top = _arc(0, 0.02, 0.5, 0.42, 180, 360)
    scallops = [p for k in range(4) for p in _arc(0.375 - 0.25 * k, 0.02, 0.125, 0.07, 0, -180, 8)]
    return top + scallops


_SHAPES: dict[str, list[tuple]] = {
    "T恤": [("body", [(-0.5, -0.28), (-0.2, -0.46), (-0.08, -0.46), (0, -0.4), (0.08, -0.46),
                      (0.2, -0.46), (0.5, -0.28), (0.4, -0.06), (0.27, -0.14), (0.27, 0.48),
                      (-0.27, 0.48), (-0.27, -0.14), (-0.4, -0.06)]),
            ("stroke", _arc(0, -0.46, 0.08, 0.07, 0, 180, 10)),
            ("stroke", [(-0.27, -0.14), (-0.23, -0.43)]),
            ("stroke", [(0.27, -0.14), (0.23, -0.43)])],
    "连衣裙": [("body", [(-0.13, -0.48), (-0.07, -0.48), (0, -0.38), (0.07, -0.48), (0.13, -0.48),
                        (0.17, -0.12), (0.11, -0.02), (0.4, 0.48), (-0.4, 0.48), (-0.11, -0.02),
                        (-0.17, -0.12)]),
              ("trim_dark", _rect(-0.12, -0.05, 0.12, 0.01)),
              ("stroke", [(-0.05, 0.06), (-0.16, 0.46)]), ("stroke", [(0.05, 0.06), (0.16, 0.46)])],
    "高跟鞋": [("body", [(-0.5, 0.22), (-0.46, 0.1), (-0.2, 0.02), (0.05, -0.12), (0.22, -0.3),
                        (0.4, -0.34), (0.46, -0.26), (0.44, -0.1), (0.4, 0.46), (0.33, 0.46),
                        (0.3, 0.03), (0.12, 0.07), (-0.18, 0.28), (-0.44, 0.3)]),
              ("trim_dark", [(-0.1, -0.02), (0.1, -0.14), (0.26, -0.24), (0.4, -0.27), (0.38, -0.2),
                             (0.22, -0.17), (0.06, -0.07)]),
              ("trim_dark", _rect(0.33, 0.4, 0.4, 0.46))],
    "背包": [("body", _arc(0, -0.32, 0.15, 0.15)), ("hole", _arc(0, -0.32, 0.09, 0.09)),
             ("body", _rect(-0.34, -0.3, 0.34, 0.48, 0.12)),
             ("trim_dark", _rect(-0.22, 0.12, 0.22, 0.42, 0.06)),
             ("stroke", [(-0.18, 0.18), (0.18, 0.18)]), ("stroke", [(-0.26, -0.18), (-0.26, 0.4)])],
    "帽子": [("body", _arc(0, 0.08, 0.3, 0.38, 180, 360)), ("body", _arc(0, 0.1, 0.5, 0.1)),
             ("trim_dark", [(-0.3, 0.08), (0.3, 0.08), (0.29, -0.01), (-0.29, -0.01)])],
    "马克杯": [("body", _arc(0.24, 0.05, 0.21, 0.23)), ("hole", _arc(0.24, 0.05, 0.11, 0.13)),
              ("body", _rect(-0.36, -0.36, 0.2, 0.44, 0.05)),
              ("trim_light", _arc(-0.08, -0.36, 0.28, 0.05))],
    "台灯": [("body", [(-0.32, -0.02), (0.32, -0.02), (0.16, -0.46), (-0.16, -0.46)]),
             ("body", _rect(-0.03, -0.02, 0.03, 0.4)), ("body", _arc(0, 0.42, 0.26, 0.07)),
             ("trim_light", _arc(0, -0.02, 0.12, 0.045, 0, 180, 12))],
    "手表": [("body", _rect(-0.14, -0.5, 0.14, 0.5, 0.04)), ("body", _arc(0, 0, 0.3, 0.3)),
             ("body", _rect(0.28, -0.05, 0.37, 0.05, 0.02)), ("trim_light", _arc(0, 0, 0.23, 0.23)),
             ("stroke", [(0, 0), (0, -0.17)]), ("stroke", [(0, 0), (0.12, 0.06)]),
             ("stroke", [(-0.08, -0.44), (0.08, -0.44)]),
             ("stroke", [(-0.08, 0.44), (0.08, 0.44)])],
    "雨伞": [("body", _umbrella_canopy()), ("body", _rect(-0.016, 0, 0.016, 0.4)),
             ("body", [(-0.02, -0.4), (0.02, -0.4), (0, -0.49)]),
             ("trim_dark", _arc(0.07, 0.4, 0.07, 0.07, 0, 180, 10)  # the J of the handle
              + _arc(0.07, 0.4, 0.04, 0.04, 180, 0, 10)),
             ("stroke", [(0, -0.4), (-0.25, 0.02)]), ("stroke", [(0, -0.4), (0, 0.02)]),
             ("stroke", [(0, -0.4), (0.25, 0.02)])],
    "运动鞋": [("body", [(-0.5, 0.2), (-0.48, 0.05), (-0.3, -0.02), (-0.05, -0.12), (0.1, -0.3),
                        (0.38, -0.32), (0.48, -0.2), (0.5, 0.2)]),
              ("trim_light", _rect(-0.5, 0.14, 0.5, 0.3, 0.06)),
              ("stroke", [(-0.02, -0.1), (0.06, -0.2)]), ("stroke", [(0.05, -0.05), (0.13, -0.16)]),
              ("stroke", [(-0.3, 0.08), (0.0, 0.02), (0.3, -0.08)])],
}


def _placed(shape, rng: random.Random, side: float, scale: float) -> list[tuple[str, list]]:
    """The shape jittered and fitted inside the margins; coordinates in canvas pixels.

    Jitter: scale, aspect, taper (wider at top or bottom), shear, rotation, mirror, position.
    The proportion changes bend the whole shape coherently, so its parts stay joined; together
    they keep same-attribute items apart under pHash (measured in the tests).
    """
    s = scale * rng.uniform(0.88, 1.1) * side
    aspect = rng.uniform(0.85, 1.18)
    sx, sy = s * aspect ** 0.5 * rng.choice((-1, 1)), s / aspect ** 0.5
    taper, shear = rng.uniform(-0.3, 0.3), rng.uniform(-0.15, 0.15)
    a = radians(rng.uniform(-12, 12))
    ca, sa = cos(a), sin(a)

    def warp(x, y):  # unit box -> proportions -> scale -> rotation, about the shape's centre
        x = x * (1 + taper * y) + shear * y
        x, y = x * sx, y * sy
        return x * ca - y * sa, x * sa + y * ca

    parts = [(role, [warp(x, y) for x, y in pts]) for role, pts in shape]
    xs = [x for _, pts in parts for x, _ in pts]
    ys = [y for _, pts in parts for _, y in pts]
    room = side * (1 - 2 * _MARGIN)
    shrink = min(1.0, room / (max(xs) - min(xs)), room / (max(ys) - min(ys)))
    lo, hi = side * _MARGIN, side * (1 - _MARGIN)

    def offset(vmin, vmax):  # a random position that keeps the object inside the margins
        return rng.uniform(lo - vmin * shrink, hi - vmax * shrink)

    dx, dy = offset(min(xs), max(xs)), offset(min(ys), max(ys))
    return [(role, [(x * shrink + dx, y * shrink + dy) for x, y in pts]) for role, pts in parts]


# --- fills: Pillow drawing in C, about 3 ms an item at 128 px ----------------------------------

def _shade(rgb, factor: float) -> tuple[int, int, int]:
    """factor < 1 darkens towards black, > 1 lightens towards white."""
    if factor <= 1:
        return tuple(int(c * factor) for c in rgb)
    return tuple(int(c + (255 - c) * (factor - 1)) for c in rgb)


def _stripes(image: Image.Image, tint, rng: random.Random) -> None:
    side = image.width
    angle = radians(rng.choice((0, 90, 45, 135)) + rng.uniform(-8, 8))
    width = rng.uniform(0.035, 0.07) * side
    ux, uy, vx, vy = cos(angle), sin(angle), -sin(angle), cos(angle)  # across, along the stripes
    reach = side * 1.5
    draw = ImageDraw.Draw(image)
    u = -reach + rng.uniform(0, 2 * width)
    while u < reach:
        cx, cy = side / 2 + u * ux, side / 2 + u * uy
        draw.polygon([(cx - reach * vx, cy - reach * vy), (cx + reach * vx, cy + reach * vy),
                      (cx + reach * vx + width * ux, cy + reach * vy + width * uy),
                      (cx - reach * vx + width * ux, cy - reach * vy + width * uy)], fill=tint)
        u += 2 * width


def _plaid(image: Image.Image, tint, rng: random.Random) -> None:
    side = image.width
    period = rng.uniform(0.12, 0.2) * side
    band, line = 0.35 * period, max(1.0, 0.03 * period)
    shade = Image.new("L", (side, side), 0)  # how much darker: one band 22 %, a crossing 44 %
    one = Image.new("L", (side, side), 0)
    draw_s, draw_1 = ImageDraw.Draw(shade), ImageDraw.Draw(one)
    x0, y0 = rng.uniform(-period, 0), rng.uniform(-period, 0)
    for k in range(int(side / period) + 2):
        draw_s.rectangle([x0 + k * period, 0, x0 + k * period + band, side], fill=56)
        draw_1.rectangle([0, y0 + k * period, side, y0 + k * period + band], fill=56)
    darker = ImageChops.invert(ImageChops.add(shade, one)).convert("RGB")
    image.paste(ImageChops.multiply(image, darker))
    draw = ImageDraw.Draw(image)
    for k in range(int(side / period) + 2):
        x, y = x0 + (k + 0.6) * period, y0 + (k + 0.6) * period
        draw.rectangle([x - line, 0, x + line, side], fill=tint)
        draw.rectangle([0, y - line, side, y + line], fill=tint)


def _dots(image: Image.Image, tint, rng: random.Random) -> None:
    side = image.width
    step = rng.uniform(0.09, 0.14) * side
    r = rng.uniform(0.22, 0.32) * step
    x0, y0 = rng.uniform(-step, 0), rng.uniform(-step, 0)
    draw = ImageDraw.Draw(image)
    for row in range(int(side / step) + 2):
        for col in range(int(side / step) + 2):
            cx, cy = x0 + (col + 0.5 * (row % 2)) * step, y0 + row * step
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tint)


def _camouflage(image: Image.Image, rgb, rng: random.Random) -> None:
    """Four tones (dark, base, olive mix, light) thresholded from smooth random noise."""
    side = image.width
    cells = rng.randint(7, 11)
    noise = np.random.default_rng(rng.getrandbits(64)).integers(0, 256, (cells, cells), np.uint8)
    smooth = Image.fromarray(noise).resize((side, side), Image.BICUBIC)
    cuts = np.quantile(np.asarray(smooth), [0.3, 0.55, 0.8])
    index = smooth.point([int(np.searchsorted(cuts, v, side="right")) for v in range(256)])
    olive = tuple(int(0.6 * c + 0.4 * o) for c, o in zip(rgb, (95, 90, 50)))
    index.putpalette([*_shade(rgb, 0.5), *rgb, *olive, *_shade(rgb, 1.35)])
    image.paste(index.convert("RGB"))


def pattern_fill(pattern: str, rgb, side: int, rng: random.Random) -> Image.Image:
    """An RGB [side, side] texture of `pattern` (one of PATTERNS) in colour `rgb`."""
    image = Image.new("RGB", (side, side), tuple(rgb))
    # the second tone: light on dark colours, dark on light ones
    tint = _shade(rgb, 1.72) if sum(rgb) < 600 else _shade(rgb, 0.55)
    if pattern == "条纹":
        _stripes(image, tint, rng)
    elif pattern == "格子":
        _plaid(image, tint, rng)
    elif pattern == "圆点":
        _dots(image, tint, rng)
    elif pattern == "迷彩":
        _camouflage(image, rgb, rng)
    elif pattern != "纯色":
        raise ValueError(f"unknown pattern {pattern!r}: expected one of {PATTERNS}")
    return image


@lru_cache(maxsize=4)
def _light(side: int) -> Image.Image:
    """A soft diagonal light from the top left: 100 % there, 86 % at the bottom right."""
    y, x = np.mgrid[0:side, 0:side]
    return Image.fromarray((255 - 36 * (x + y) / (2 * side)).astype(np.uint8), "L").convert("RGB")


def _inner_edge(mask: Image.Image, width: int) -> Image.Image:
    """The band of `width` pixels just inside the mask's border (an erosion, as numpy minima)."""
    m = np.asarray(mask)
    eroded = m.copy()
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if 0 < abs(dy) + abs(dx) <= width:
                eroded = np.minimum(eroded, np.roll(m, (dy, dx), axis=(0, 1)))
    return Image.fromarray(m - eroded, "L")


def render_item(attributes: dict, rng: random.Random, size: int = 128) -> Image.Image:
    """One product, RGB [size, size], white background, drawn from `attributes` with `rng` jitter.

    `attributes` holds `category`, `colour`, `pattern`, `size` as in CATEGORIES, COLOURS,
    PATTERNS, SIZES. The same attributes and rng state give the same pixels.
    """
    side = size * _SUPERSAMPLE
    jitter = rng.uniform(0.9, 1.08)
    rgb = tuple(min(255, max(0, round(c * jitter + rng.uniform(-10, 10))))
                for c in COLOURS[attributes["colour"]])
    parts = _placed(_SHAPES[attributes["category"]], rng, side, SIZES[attributes["size"]])

    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    for role, pts in parts:
        if role != "stroke":
            draw.polygon(pts, fill=0 if role == "hole" else 255)

    # drop shadow: the mask offset down-right, blurred, darkening the white background
    shift = rng.uniform(0.01, 0.02) * side
    shadow = ImageChops.offset(mask, round(shift), round(shift * rng.uniform(0.8, 1.3)))
    depth = rng.uniform(0.18, 0.3)
    shadow = shadow.filter(ImageFilter.BoxBlur(0.015 * side))  # a third of a Gaussian's cost
    canvas = shadow.point([round(255 - depth * v) for v in range(256)]).convert("RGB")

    # the pattern under the light, clipped to the object's mask
    fill = ImageChops.multiply(pattern_fill(attributes["pattern"], rgb, side, rng), _light(side))
    image = Image.composite(fill, canvas, mask)

    draw = ImageDraw.Draw(image)
    outline = _shade(rgb, 0.55)
    tones = {"trim_light": (242, 240, 234), "trim_dark": _shade(rgb, 0.68)}
    for role, pts in parts:
        if role in tones:
            draw.polygon(pts, fill=tones[role], outline=outline, width=_SUPERSAMPLE)
        elif role == "stroke":
            draw.line(pts, fill=outline, width=2 * _SUPERSAMPLE, joint="curve")
    image.paste(outline, mask=_inner_edge(mask, _SUPERSAMPLE))
    return image.reduce(_SUPERSAMPLE)  # 2x2 box average: the anti-aliasing of the supersampling


# --- titles and descriptions -------------------------------------------------------------------

_OPENINGS = (
    "这款{colour}{category}采用{pattern}设计，{size_word}尺寸。",
    "{size_word}{category}，{colour}{pattern}款式，{hook}。",
    "本店新款{category}，颜色为{colour}，{pattern}图案，尺码是{size_word}。",
    "{colour}{pattern}{category}上新啦，这是{size_word}款，{hook}。",
    "推荐一款{size_word}的{category}：{colour}底色，{pattern}花样，{hook}。",
)
_HOOKS = ("简约百搭", "经典耐看", "时尚大方", "小巧精致", "实用又好看", "年轻人都喜欢")
_MATERIALS = {
    "T恤": ("精选纯棉面料，柔软透气，贴身穿着不闷热。", "莫代尔混纺面料，垂感好，洗后不易起球变形。"),
    "连衣裙": ("雪纺面料轻盈飘逸，内衬不透光。", "棉麻混纺面料，夏天穿着清爽透气。"),
    "高跟鞋": ("头层牛皮鞋面，软底防滑，鞋跟约{n}厘米。", "超纤皮革鞋面，内里柔软，久站不累脚。"),
    "背包": ("防泼水牛津布，耐磨抗撕裂，容量约{n}升。", "加厚帆布材质，肩带加宽减压，背起来更轻松。"),
    "帽子": ("透气棉质帽身，帽檐定型不易塌。", "羊毛呢面料，保暖挡风，帽围可调节。"),
    "马克杯": ("高温烧制陶瓷，釉面光滑易清洗，容量约{n}毫升。", "骨瓷杯身轻薄，手柄握感舒适，可进微波炉。"),
    "台灯": ("金属灯杆可调角度，护眼光源无频闪。", "树脂灯座稳重不易倒，功率约{n}瓦，三档调光。"),
    "手表": ("不锈钢表壳，石英机芯走时精准，防水{n}米。", "硅胶表带亲肤透气，表盘清晰易读。"),
    "雨伞": ("{n}骨加固伞架，抗风不易翻，晴雨两用。", "黑胶涂层防紫外线，伞面收纳后小巧便携。"),
    "运动鞋": ("网面鞋身透气，橡胶大底耐磨防滑。", "轻质缓震中底，跑步走路都不累，鞋码标准。"),
}
_MORE = (
    "适合上班、通勤、旅行和日常出门使用。", "送给家人朋友也很合适，生日节日都拿得出手。",
    "{colour}不挑人，和其他颜色都好搭配。", "{pattern}的设计让{category}看起来更有层次感。",
    "做工细致，走线整齐，细节处理到位。", "建议手洗或轻柔清洁，避免长时间暴晒。",
    "实物颜色以图片为准，不同显示器可能略有色差。", "{size_word}适合大多数人使用，拿不准尺码可以咨询客服。",
    "本店支持七天无理由退换，下单后四十八小时内发货。", "已有{n}位买家购买，好评率很高。",
    "包装结实，送人自用都很体面。", "这款{category}是店里的热销款，库存不多。",
    "周末逛街或者约会，选它准没错。", "学生党和上班族都很喜欢这个款式。",
)


def describe_item(attributes: dict, rng: random.Random) -> tuple[str, str]:
    """(title, description) stating colour, category, pattern and size; 10-100 jieba words."""
    values = {**attributes, "size_word": SIZE_WORDS[attributes["size"]]}
    title = "{size_word}{colour}{pattern}{category}".format(**values)

    def fill(template: str) -> str:
        return template.format(**values, hook=rng.choice(_HOOKS), n=rng.randint(2, 99))

    sentences = [fill(rng.choice(_OPENINGS)), fill(rng.choice(_MATERIALS[attributes["category"]]))]
    sentences += [fill(t) for t in rng.sample(_MORE, rng.randint(1, 4))]
    while description_word_count("".join(sentences)) > 100:  # never at these template lengths
        sentences.pop()
    return title, "".join(sentences)


# --- the catalogue -----------------------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueItem:
    key: str  # "000123": file stem of the image
    title: str
    text: str
    attributes: dict[str, str] = field(hash=False)
    render_seed: int = 0  # seeds the rng of render_item, so the image can be redrawn anywhere

    @property
    def id(self) -> str:
        return f"catalogue/{self.key}"

    def render(self, size: int) -> Image.Image:
        return render_item(self.attributes, random.Random(self.render_seed), size)

    def png(self, size: int) -> bytes:
        return png_bytes(self.render(size))


@dataclass(frozen=True)
class CatalogueManifest:
    items_path: Path  # pairs/catalogue/items.jsonl
    images_dir: Path  # pairs/catalogue/images
    n_items: int  # all generated items
    n_listed: int  # items written to items.jsonl
    n_redrawn: int  # items whose first drawing was a pHash near-duplicate of an earlier one
    webpage_items: tuple[CatalogueItem, ...]  # held back for the crawled pages, final seeds

    @property
    def n_webpage_only(self) -> int:
        return len(self.webpage_items)


def png_bytes(image: Image.Image) -> bytes:
    """PNG without metadata: the same pixels always give the same bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file beside `path`, then rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def description_word_count(text: str) -> int:
    """Words of `text` as jieba cuts them, punctuation and spaces not counted."""
    return sum(1 for w in jieba.lcut(text)
               if w.strip() and not all(unicodedata.category(c)[0] in "PSZ" for c in w))


def plan_catalogue(spec: CatalogueSpec) -> tuple[list[CatalogueItem], set[str]]:
    """All items (attributes, texts, first render seeds) and the keys held back for webpages.

    Draws only from `random.Random(spec.seed)`, so the plan is the same on every machine;
    `draw_distinct` may later replace a render seed.
    """
    rng = random.Random(spec.seed)
    items = []
    for index in range(spec.n_items):
        attributes = {"category": rng.choice(CATEGORIES), "colour": rng.choice(list(COLOURS)),
                      "pattern": rng.choice(PATTERNS), "size": rng.choice(list(SIZES))}
        title, text = describe_item(attributes, rng)
        items.append(CatalogueItem(f"{index:06d}", title, text, attributes, rng.getrandbits(63)))
    n_web = round(spec.n_items * spec.webpage_fraction)
    webpage_keys = {items[i].key for i in rng.sample(range(spec.n_items), n_web)}
    return items, webpage_keys


def _phash_bits(image: Image.Image) -> np.uint64:
    return np.uint64(int(str(imagehash.phash(image)), 16))


def draw_distinct(items: list[CatalogueItem], size: int
                  ) -> tuple[list[CatalogueItem], list[bytes], int]:
    """Render every item so that no two are pHash near-duplicates; returns (items, PNGs, n_redrawn).

    Jitter alone leaves about 1 in 700 same-attribute pairs (and 1 in 23000 of all pairs) within
    4 bits, mostly same category and size; an item that lands that close to any earlier one is
    redrawn with its next seed (a deterministic chain), so the corpus stage's dedup
    (ImageRules.phash_max_distance = 4) never eats a catalogue item.
    """
    hashes = np.zeros(len(items), np.uint64)
    out, pngs, redrawn = [], [], 0
    progress = tqdm(items, desc="catalogue images", unit="img", disable=None, leave=False)
    for k, item in enumerate(progress):
        for _attempt in range(_MAX_REDRAWS):
            image = item.render(size)
            bits = _phash_bits(image)
            if k == 0 or np.bitwise_count(hashes[:k] ^ bits).min() >= MIN_PHASH_DISTANCE:
                break
            item = replace(item, render_seed=random.Random(item.render_seed).getrandbits(63))
            redrawn += _attempt == 0
        hashes[k] = bits
        out.append(item)
        pngs.append(png_bytes(image))
    return out, pngs, redrawn


def generate_catalogue(raw_dir: Path, spec: CatalogueSpec) -> CatalogueManifest:
    """Write items.jsonl and the PNGs of the listed items under `raw_dir/pairs/catalogue/`.

    Images are `spec.image_size` pixels square (about 5 ms each at 128 px, one core). All
    items, the webpage-only ones included, are drawn pHash-distinct. Stale images of an earlier,
    larger spec are removed so the pairs stage never sees files no record points to.
    """
    root = Path(raw_dir) / "pairs" / "catalogue"
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    planned, webpage_keys = plan_catalogue(spec)
    items, pngs, redrawn = draw_distinct(planned, spec.image_size)
    listed = [item for item in items if item.key not in webpage_keys]
    for item, png in zip(items, pngs):
        if item.key not in webpage_keys:
            write_atomically(images_dir / f"{item.key}.png", png)
    keep = {f"{item.key}.png" for item in listed}
    for stale in images_dir.glob("*.png"):
        if stale.name not in keep:
            stale.unlink()
    lines = [json.dumps({"id": item.id, "image": f"images/{item.key}.png", "text": item.text,
                         "title": item.title, "attributes": item.attributes}, ensure_ascii=False)
             for item in listed]
    items_path = root / "items.jsonl"
    write_atomically(items_path, "".join(line + "\n" for line in lines).encode("utf-8"))
    return CatalogueManifest(items_path, images_dir, len(items), len(listed), redrawn,
                             tuple(item for item in items if item.key in webpage_keys))
