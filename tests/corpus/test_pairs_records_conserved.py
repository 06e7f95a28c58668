"""Every pair candidate ends kept or quarantined with a reason, whatever the mix of inputs."""

import io
import json
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.pairs_pipeline import PairAnnotator, kept_pairs, quarantined_pairs, plan_units
from m6_pipeline.corpus.text_filters import load_lexicon

TEXT = "一件红色条纹的连衣裙，纯棉面料，适合夏天穿着，白色背景的商品图片。"
KINDS = st.sampled_from(["good", "tiny", "empty", "not_image", "truncated", "missing", "escape", "remote",
                         "no_image_field", "short_text", "bad_json", "cmyk", "flat", "fifo", "text_list",
                         "grey16"])
EXPECTED = {"tiny": "image_too_small", "empty": "image_empty_file", "not_image": "image_not_decodable",
            "truncated": "image_truncated", "missing": "image_missing", "escape": "path_outside_raw",
            "remote": "remote_url_not_fetched", "no_image_field": "image_missing",
            "short_text": "text_too_short", "bad_json": "unparseable_json", "flat": "image_low_quality",
            "fifo": "image_missing", "text_list": "field_not_string"}


def product(seed: int, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (96, 96), "white")
    draw = ImageDraw.Draw(img)
    x, y = rng.integers(5, 30, 2)
    draw.rectangle([x, y, x + 50, y + 55], fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    for k in range(0, 50, 6):
        draw.line([x + k, y, x + k, y + 55], fill=(255, 255, 255), width=2)
    buf = io.BytesIO()
    (img.convert("CMYK") if mode == "CMYK" else img).save(buf, "JPEG" if mode == "CMYK" else "PNG")
    return buf.getvalue()


def write_case(root, kinds: list[str]) -> None:
    folder = root / "pairs" / "shop"
    (folder / "img").mkdir(parents=True)
    (root.parent / "secret.png").write_bytes(product(0))
    lines = []
    for i, kind in enumerate(kinds):
        name = f"img/{i}.png"
        data = {"good": product(i), "cmyk": product(i, "CMYK"), "empty": b"", "not_image": b"hello",
                "truncated": product(i)[:200], "short_text": product(i),
                "tiny": _encode(Image.new("RGB", (40, 40), "red")),
                "flat": _encode(Image.new("RGB", (96, 96), (120, 120, 120)))}.get(kind)
        if kind == "grey16":
            y, x = np.mgrid[0:96, 0:96]  # a textured 16-bit greyscale photo: kept, not saturated
            data = _encode(Image.fromarray((x * 500 + (y // 8 % 2) * 12000 + 3000).astype(np.uint16)))
        if kind == "fifo":
            os.mkfifo(folder / name)
        elif data is not None:
            (folder / name).write_bytes(data)
        ref = {"missing": "img/nope.png", "escape": "../../../secret.png",
               "remote": "https://cdn.example.com/a.jpg"}.get(kind, name)
        record = {"image": ref, "text": "短" if kind == "short_text" else [TEXT] if kind == "text_list" else TEXT}
        if kind == "no_image_field":
            record.pop("image")
        lines.append(b'{"image": ' if kind == "bad_json" else json.dumps(record, ensure_ascii=False).encode())
    (folder / "items.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(KINDS, min_size=1, max_size=20))
def test_pair_records_are_conserved(tmp_path_factory, lexicon_path, kinds):
    raw = tmp_path_factory.mktemp("case") / "raw"
    write_case(raw, kinds)
    cfg = CorpusConfig(raw_dir=raw, text_rules={"lexicon_path": str(lexicon_path)})
    chunks, pages = plan_units(raw)
    annotate = PairAnnotator(cfg, load_lexicon(lexicon_path))
    from dataclasses import asdict

    tables = [t for c in chunks for t in annotate({k: np.array([v]) for k, v in {"kind": "jsonl", **asdict(c)}.items()})]
    import pyarrow as pa

    annotated = pa.concat_tables(tables)
    kept, quarantine = kept_pairs(annotated), quarantined_pairs(annotated)
    assert annotated.num_rows == len(kinds) == kept.num_rows + quarantine.num_rows
    reasons = dict(zip(quarantine.column("order").to_pylist(), quarantine.column("reason").to_pylist()))
    for i, kind in enumerate(kinds):
        expected = EXPECTED.get(kind)
        assert reasons.get(i + 1) == expected, (i, kind, reasons.get(i + 1))
    assert all(w * h >= 5000 for w, h in zip(kept.column("width").to_pylist(), kept.column("height").to_pylist()))
