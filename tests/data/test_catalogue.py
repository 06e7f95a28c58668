"""The synthetic e-commerce catalogue: records, texts, images, determinism, pHash distinctness."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import random

import imagehash
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from m6_pipeline.corpus.config import CatalogueSpec
from m6_pipeline.data.catalogue import (
    CATEGORIES,
    COLOURS,
    MIN_PHASH_DISTANCE,
    PATTERNS,
    SIZE_WORDS,
    SIZES,
    describe_item,
    description_word_count,
    draw_distinct,
    generate_catalogue,
    pattern_fill,
    plan_catalogue,
    render_item,
)

SPEC = CatalogueSpec(n_items=60, image_size=80, webpage_fraction=0.2, items_per_page=4, seed=3)


def _records(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _object_pixels(image: Image.Image) -> int:
    """Pixels that are neither white background nor soft grey shadow."""
    a = np.asarray(image.convert("RGB"), np.int16)
    return int(((a.max(axis=2) < 200) | (a.max(axis=2) - a.min(axis=2) > 40)).sum())


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    return raw, generate_catalogue(raw, SPEC)


def test_vocabulary():
    assert len(CATEGORIES) >= 8 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert len(COLOURS) >= 10 and "白色" not in COLOURS
    assert all(min(rgb) < 200 for rgb in COLOURS.values())  # none reads as the white background
    assert set(PATTERNS) >= {"纯色", "条纹", "格子", "圆点", "迷彩"}
    assert list(SIZES) == ["小", "中", "大"] and SIZES["小"] < SIZES["中"] < SIZES["大"]
    # no colour name contains another, so a colour named in a text is unambiguous
    assert not [a for a, b in itertools.permutations(COLOURS, 2) if a in b]


def test_manifest_and_held_back_items(catalogue):
    raw, manifest = catalogue
    records = _records(manifest.items_path)
    assert manifest.items_path == raw / "pairs/catalogue/items.jsonl"
    assert manifest.n_items == 60 and manifest.n_webpage_only == 12
    assert manifest.n_listed == len(records) == 48
    listed = {r["id"] for r in records}
    assert not listed & {item.id for item in manifest.webpage_items}
    on_disk = sorted(p.stem for p in manifest.images_dir.glob("*.png"))
    assert on_disk == sorted(i.split("/")[1] for i in listed)


def test_records_state_their_attributes(catalogue):
    records = _records(catalogue[1].items_path)
    for r in records:
        key = r["id"].removeprefix("catalogue/")
        assert len(key) == 6 and r["image"] == f"images/{key}.png"
        a = r["attributes"]
        assert set(a) == {"category", "colour", "pattern", "size"}
        assert a["category"] in CATEGORIES and a["colour"] in COLOURS
        assert a["pattern"] in PATTERNS and a["size"] in SIZES
        assert r["title"] == f"{SIZE_WORDS[a['size']]}{a['colour']}{a['pattern']}{a['category']}"
        for word in (a["category"], a["colour"], a["pattern"], SIZE_WORDS[a["size"]]):
            assert word in r["text"], (r["id"], word)
        assert 10 <= description_word_count(r["text"]) <= 100
    assert len({r["text"] for r in records}) == len(records)
    assert len({r["attributes"]["category"] for r in records}) >= 8


def test_images_are_products_on_white(catalogue):
    _, manifest = catalogue
    for record in _records(manifest.items_path):
        image = Image.open(manifest.items_path.parent / record["image"])
        assert image.mode == "RGB" and image.size == (80, 80)
        assert image.width * image.height >= 5000  # the paper's minimum (§2.3)
        for corner in [(0, 0), (79, 0), (0, 79), (79, 79)]:
            assert image.getpixel(corner) == (255, 255, 255)
        assert _object_pixels(image) > 200


def test_no_two_images_are_phash_near_duplicates(catalogue):
    _, manifest = catalogue
    hashes = [imagehash.phash(Image.open(p)) for p in sorted(manifest.images_dir.glob("*.png"))]
    hashes += [imagehash.phash(item.render(SPEC.image_size)) for item in manifest.webpage_items]
    assert min(a - b for a, b in itertools.combinations(hashes, 2)) >= MIN_PHASH_DISTANCE


def test_a_near_duplicate_drawing_is_redrawn():
    items, _ = plan_catalogue(SPEC)
    twins = [items[0], dataclasses.replace(items[0], key="999999")]  # same attributes, same seed
    drawn, pngs, redrawn = draw_distinct(twins, 64)
    assert redrawn == 1 and drawn[0] == twins[0] and drawn[1].render_seed != twins[0].render_seed
    hashes = [imagehash.phash(Image.open(io.BytesIO(png))) for png in pngs]
    assert hashes[0] - hashes[1] >= MIN_PHASH_DISTANCE
    assert drawn[1].png(64) == pngs[1]  # the item carries the seed its image was drawn with


def test_generation_is_deterministic(catalogue, tmp_path):
    raw, manifest = catalogue
    again = generate_catalogue(tmp_path, SPEC)
    assert again.items_path.read_bytes() == manifest.items_path.read_bytes()
    for path in manifest.images_dir.glob("*.png"):
        assert (again.images_dir / path.name).read_bytes() == path.read_bytes()
    assert again.webpage_items == manifest.webpage_items


def test_a_smaller_spec_removes_stale_images(tmp_path):
    generate_catalogue(tmp_path, SPEC)
    small = generate_catalogue(tmp_path, SPEC.model_copy(update={"n_items": 10}))
    assert len(list(small.images_dir.glob("*.png"))) == small.n_listed == 8
    assert not list(tmp_path.rglob("*.tmp"))


def test_same_attributes_never_render_the_same_pixels():
    attributes = {"category": "连衣裙", "colour": "红色", "pattern": "条纹", "size": "中"}
    images = [render_item(attributes, random.Random(seed), 64) for seed in range(6)]
    assert len({im.tobytes() for im in images}) == 6
    assert render_item(attributes, random.Random(7), 64).tobytes() == \
        render_item(attributes, random.Random(7), 64).tobytes()


def test_size_attribute_scales_the_object():
    def area(size):
        return np.mean([_object_pixels(render_item({"category": c, "colour": "蓝色", "pattern": "纯色",
                                                    "size": size}, random.Random(i), 96))
                        for i, c in enumerate(CATEGORIES)])
    assert area("小") < area("中") < area("大")


@pytest.mark.parametrize(("pattern", "colours"), [("纯色", 1), ("条纹", 2), ("圆点", 2), ("迷彩", 4)])
def test_pattern_fills(pattern, colours):
    fill = np.asarray(pattern_fill(pattern, (40, 80, 200), 96, random.Random(1)))
    values, counts = np.unique(fill.reshape(-1, 3), axis=0, return_counts=True)
    main = counts[counts > 0.05 * counts.sum()]  # ignore the few anti-aliased edge pixels
    assert len(main) == colours


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**63), category=st.sampled_from(CATEGORIES),
       colour=st.sampled_from(list(COLOURS)), pattern=st.sampled_from(PATTERNS),
       size=st.sampled_from(list(SIZES)))
def test_any_seed_gives_a_10_to_100_word_description(seed, category, colour, pattern, size):
    attributes = {"category": category, "colour": colour, "pattern": pattern, "size": size}
    title, text = describe_item(attributes, random.Random(seed))
    assert 10 <= description_word_count(text) <= 100
    for word in (category, colour, pattern, SIZE_WORDS[size]):
        assert word in title and word in text
