"""Image-text pair extraction from one crawled page, against the number of images on it.

    .venv/bin/python benchmarks/page_extraction.py [--sizes 2000 5000 20000] [--repeats 5]

The page is generated: a shop page whose images sit in product cards (<a><img></a><p>text),
<figure>s with a caption, a gallery <div> of bare images and a <figure> holding a whole photo
set, plus a logo in the <header>. The gallery and the photo set are the layouts where asking
each image's ancestors afresh cost images x page size; `extract_page_pairs` must stay linear,
so the time per image should not grow with the page.
"cold": the first call in a fresh Python process (after the imports, timed separately);
"warm": the median of `--repeats` calls in this process after one untimed call.
Image files exist on disk (a temporary raw directory), as the references are resolved.
Writes benchmarks/results/page_extraction.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "page_extraction.json"
DESCRIPTION = "这款红色连衣裙采用纯棉面料，夏天穿着清爽透气。"
# images per layout, out of 10: product card, captioned figure, gallery, photo-set figure
LAYOUT_SHARE = {"card": 4, "figure": 2, "gallery": 3, "photo_set": 1}


def shop_page(n_images: int) -> bytes:
    """A UTF-8 page with `n_images` <img> (the header logo included), in LAYOUT_SHARE parts."""
    counts = {layout: n_images * share // 10 for layout, share in LAYOUT_SHARE.items()}
    counts["card"] += n_images - 1 - sum(counts.values())  # the logo is the last one
    cards = "".join(f'<div class="goods"><a href="/item/{k}"><img src="images/{k % 50}.png" alt="款{k}">'
                    f"</a><p>{DESCRIPTION}</p><span>¥{k}</span></div>" for k in range(counts["card"]))
    figures = "".join(f'<figure><img src="images/{k % 50}.png"><figcaption>第{k}号：{DESCRIPTION}'
                      "</figcaption></figure>" for k in range(counts["figure"]))
    gallery = "".join(f'<img src="images/{k % 50}.png">' for k in range(counts["gallery"]))
    photo_set = "".join(f'<img data-src="images/{k % 50}.png">' for k in range(counts["photo_set"]))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>店铺</title></head><body>"
            '<header><img src="images/logo.png" alt="店铺"></header>'
            f'<main><section class="cards">{cards}</section><section>{figures}</section>'
            f'<div class="gallery">{gallery}</div>'
            f"<figure>{photo_set}<figcaption>{DESCRIPTION}</figcaption></figure></main>"
            "</body></html>").encode("utf-8")


def make_raw(root: Path) -> Path:
    images = root / "raw" / "html" / "shop" / "images"
    images.mkdir(parents=True)
    for name in [f"{k}.png" for k in range(50)] + ["logo.png"]:
        (images / name).write_bytes(b"png")  # only existence is checked during extraction
    return root / "raw"


def time_call(n_images: int, raw: Path) -> tuple[float, int]:
    """(seconds, records) of one extract_page_pairs call on the generated page."""
    from m6_pipeline.corpus.config import PairText
    from m6_pipeline.corpus.webpage_pairs import extract_page_pairs

    data, pair_text = shop_page(n_images), PairText()
    start = time.perf_counter()
    records = extract_page_pairs(data, raw / "html" / "shop" / "page.html", raw, pair_text)
    return time.perf_counter() - start, len(records)


def cold(n_images: int, raw: Path) -> dict:
    """One call in a fresh process: no warmed caches, no already-touched code paths."""
    code = ("import json, sys, time; t = time.perf_counter(); "
            "from m6_pipeline.corpus.webpage_pairs import extract_page_pairs; "
            "imports = time.perf_counter() - t; sys.path.insert(0, sys.argv[1]); "
            "from page_extraction import time_call; from pathlib import Path; "
            "seconds, records = time_call(int(sys.argv[2]), Path(sys.argv[3])); "
            "print(json.dumps({'seconds': seconds, 'records': records, 'import_seconds': imports}))")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"), str(n_images), str(raw)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from record import header

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 20000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = make_raw(Path(tmp))
        for n in args.sizes:
            first = cold(n, raw)
            time_call(n, raw)  # untimed: the warm runs start warm
            warm = [time_call(n, raw) for _ in range(args.repeats)]
            seconds = statistics.median(s for s, _ in warm)
            assert {records for _, records in warm} == {first["records"]} == {n}, (n, first, warm)
            rows.append({"images": n, "page_bytes": len(shop_page(n)), "records": n,
                         "cold_seconds": round(first["seconds"], 4),
                         "cold_import_seconds": round(first["import_seconds"], 4),
                         "warm_seconds_median": round(seconds, 4),
                         "warm_seconds_each": [round(s, 4) for s, _ in warm],
                         "warm_us_per_image": round(seconds / n * 1e6, 2)})
            print(f"{n:>7} images  cold {first['seconds']:.3f} s  warm {seconds:.3f} s  "
                  f"({seconds / n * 1e6:.1f} us/image)", flush=True)
    smallest, largest = rows[0], rows[-1]
    result = {
        **header(),
        "page": {"layout_share_of_10": LAYOUT_SHARE, "generator": "benchmarks/page_extraction.py:shop_page"},
        "repeats": args.repeats,
        "rows": rows,
        # 1.0 is linear; a per-image cost that grows with the page shows up here first
        "per_image_cost_ratio_largest_to_smallest": round(largest["warm_us_per_image"]
                                                          / smallest["warm_us_per_image"], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"per-image cost, {largest['images']} vs {smallest['images']} images: "
          f"x{result['per_image_cost_ratio_largest_to_smallest']}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
