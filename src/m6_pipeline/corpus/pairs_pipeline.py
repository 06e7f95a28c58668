"""The image-text half of corpus cleaning on Ray Data.

Candidates come from `pairs/**/*.jsonl` (an image path relative to the file and its text) and
from crawled pages `html/**/*.html` (each <img> with its surrounding text; the other sentences
of the page are discarded, §2.3). Each candidate is one record: its image is resolved inside
the raw directory, decoded safely, normalised to RGB, scored, hashed; its text is cleaned by
the same rules as plain text. Perceptual-hash near-duplicates are removed globally.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.config import CorpusConfig
from m6_pipeline.corpus.image_paths import RejectedReference, resolve_image_reference
from m6_pipeline.corpus.image_quality import (
    load_content_classifier,
    load_quality_scorer,
    near_duplicate_representatives,
    perceptual_hash,
)
from m6_pipeline.corpus.images import RejectedImage, decode_image, encode_image, read_image_file
from m6_pipeline.corpus.raw_files import FileTooLarge, RefusedFile, list_raw_files, read_capped
from m6_pipeline.corpus.raw_text import FileChunk, batch_rows, chunk_location, parse_chunk, plan_chunks
from m6_pipeline.corpus.reasons import CorpusInputError, Reason, RecordRejected
from m6_pipeline.corpus.text_filters import LexiconMatcher, load_lexicon
from m6_pipeline.corpus.text_normalise import normalise_text
from m6_pipeline.corpus.webpage_pairs import extract_page_pairs, page_source

_HTML_ORDER_BASE = 1 << 20  # page files are numbered after the pairs files in corpus order

PAIRS_SCHEMA = pa.schema([
    ("id", pa.large_string()), ("source", pa.large_string()), ("origin", pa.large_string()),
    ("text", pa.large_string()), ("image", pa.large_binary()), ("width", pa.int32()),
    ("height", pa.int32()), ("pixels", pa.int64()), ("image_ref", pa.large_string()),
    ("quality", pa.float32()), ("sharpness", pa.float32()), ("contrast", pa.float32()),
    ("entropy", pa.float32()), ("phash", pa.uint64()), ("order", pa.int64()),
    ("reason", pa.large_string()), ("detail", pa.large_string()),
])
CLEAN_PAIRS_COLUMNS = ["id", "source", "origin", "text", "image", "width", "height", "pixels",
                       "quality", "sharpness", "contrast", "entropy", "phash", "image_ref", "order"]
# what routing reads back: the clean columns plus the outcome (every annotated column today)
ROUTED_PAIRS_COLUMNS = CLEAN_PAIRS_COLUMNS + ["reason", "detail"]


@dataclass(frozen=True)
class PageFile:
    path: str
    file_index: int
    relative: str = ""  # under raw, as listed (the id of a refused page)
    reason: str | None = None  # refused before reading (raw_files)
    detail: str | None = None


def plan_units(raw_dir: Path) -> tuple[list[FileChunk], list[PageFile]]:
    raw_dir = Path(raw_dir)
    chunks = plan_chunks(raw_dir, subdir="pairs", chunk_bytes=1 << 20)
    pages = [PageFile(f.path, i, f.relative, f.reason, f.detail)
             for i, f in enumerate(list_raw_files(raw_dir, "html", (".htm", ".html")))]
    return chunks, pages


@dataclass
class _Candidate:
    id: str
    source: str
    origin: str
    text: str | None
    image_ref: str | None
    image_path: Path | None
    order: int
    reason: str | None
    detail: str | None


class PairAnnotator:
    """Ray Data UDF: a batch of work units (jsonl chunks or pages) -> annotated pair records."""

    def __init__(self, cfg: CorpusConfig, lexicon: list[str]):
        self.cfg = cfg
        self.raw_root = Path(cfg.raw_dir).resolve()
        self.lexicon = LexiconMatcher(lexicon)
        self.score_quality = load_quality_scorer(cfg.image_rules.quality_scorer)
        self.classify = load_content_classifier(cfg.image_rules.content_classifier)

    def __call__(self, units: dict[str, np.ndarray]):
        for unit in batch_rows(units):
            chunk = _chunk_of(unit) if unit["kind"] == "jsonl" else None
            try:
                table = self._annotate(self._jsonl(chunk) if chunk else self._page(unit))
            except Exception as error:  # noqa: BLE001 - the error policy of reasons.CorpusInputError
                raise CorpusInputError(chunk_location(chunk) if chunk else unit["relative"], error) from error
            yield table

    def _jsonl(self, chunk: FileChunk) -> list[_Candidate]:
        table = parse_chunk(chunk, extra=("image",), max_line_bytes=self.cfg.raw_limits.max_line_bytes)
        referrer = (self.raw_root / chunk.relative).parent  # where the file is listed, as for pages
        out = []
        for row in table.to_pylist():
            reason, detail, path = row["reason"], row["detail"], None
            if reason is None and not row["image"]:
                reason, detail = str(Reason.IMAGE_MISSING), "no 'image' field in the record"
            elif reason is None:
                try:
                    path = resolve_image_reference(row["image"], referrer, self.raw_root)
                except RejectedReference as rejected:
                    reason, detail = str(rejected.reason), rejected.detail
            out.append(_Candidate(row["id"], row["source"], chunk.relative, row["text"], row["image"],
                                  path, row["order"], reason, detail))
        return out

    def _page(self, unit: dict) -> list[_Candidate]:
        page_path, relative = Path(unit["path"]), unit["relative"]
        order_base = (_HTML_ORDER_BASE + unit["file_index"]) << 32
        reason, detail = unit["reason"] or None, unit["detail"] or None
        if reason is None:
            try:
                data = self._page_bytes(page_path, relative)
            except RecordRejected as refused:
                reason, detail = str(refused.reason), refused.detail
        if reason is not None:  # one record for the refused page, as for a page without images
            return [_Candidate(f"{relative}#page", page_source(relative), relative, None, None, None,
                               order_base, reason, detail)]
        # the page's own (listed) location: a symlinked page resolves images from where it appears
        listed = self.raw_root / relative
        images = extract_page_pairs(data, listed, self.raw_root, self.cfg.pair_text)
        return [_Candidate(im.id, im.source, relative, im.text, im.image_ref, im.image_path,
                           order_base + k, None if im.reason is None else str(im.reason), im.detail)
                for k, im in enumerate(images)]

    def _page_bytes(self, path: Path, relative: str) -> bytes:
        """The page's bytes, refused unread above raw_limits.max_page_bytes."""
        cap = self.cfg.raw_limits.max_page_bytes
        try:
            return read_capped(path, cap)
        except RefusedFile as refused:
            raise RecordRejected(refused.reason, f"{relative}: {refused.detail}") from None
        except FileTooLarge as large:
            raise RecordRejected(Reason.PAGE_TOO_LARGE, f"{relative}: {large.size} bytes > "
                                 f"raw_limits.max_page_bytes {cap}; not read") from None

    def _annotate(self, candidates: list[_Candidate]) -> pa.Table:
        rules, pair_text = self.cfg.image_rules, self.cfg.pair_text
        text = normalise_text(pa.array([c.text for c in candidates], pa.large_string()),
                              simplified=self.cfg.text_rules.to_simplified)
        text = pc.utf8_slice_codeunits(text, 0, pair_text.max_text_chars)
        lengths = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
        spam = self.lexicon.matches(text)
        cols: dict[str, list] = {name: [] for name in PAIRS_SCHEMA.names}
        for k, c in enumerate(candidates):
            reason, detail = c.reason, c.detail
            img_fields = dict(image=None, width=None, height=None, pixels=None, quality=None,
                              sharpness=None, contrast=None, entropy=None, phash=None)
            if reason is None and lengths[k] < pair_text.min_text_chars:
                reason, detail = str(Reason.TEXT_TOO_SHORT), f"{lengths[k]} characters of surrounding text"
            if reason is None and spam[k]:
                reason, detail = str(Reason.SPAM_LEXICON), "text matches the spam lexicon"
            if reason is None:
                reason, detail, img_fields = self._image(c.image_path, rules)
            cols["id"].append(c.id)
            cols["source"].append(c.source)
            cols["origin"].append(c.origin)
            cols["text"].append(text[k].as_py())
            cols["image_ref"].append(c.image_ref)
            cols["order"].append(c.order)
            cols["reason"].append(reason)
            cols["detail"].append(detail)
            for name, value in img_fields.items():
                cols[name].append(value)
        return pa.Table.from_pydict(cols, schema=PAIRS_SCHEMA)

    def _image(self, path: Path, rules) -> tuple[str | None, str | None, dict]:
        fields = dict(image=None, width=None, height=None, pixels=None, quality=None,
                      sharpness=None, contrast=None, entropy=None, phash=None)
        try:
            img = decode_image(read_image_file(path, rules.max_file_bytes), rules)
        except RejectedImage as rejected:
            return str(rejected.reason), f"{path.name}: {rejected.detail}", fields
        scores = self.score_quality(img)  # {"quality", and for the heuristic its components}
        quality = scores["quality"]
        fields.update(width=img.width, height=img.height, pixels=img.width * img.height, quality=quality,
                      sharpness=scores.get("sharpness"), contrast=scores.get("contrast"),
                      entropy=scores.get("entropy"))
        if quality < rules.min_quality:
            return str(Reason.IMAGE_LOW_QUALITY), f"quality {quality:.3f} < {rules.min_quality}", fields
        ok, why = self.classify(img)
        if not ok:
            return str(Reason.IMAGE_CONTENT_REJECTED), why, fields
        fields.update(image=encode_image(img, rules.output_format), phash=perceptual_hash(img))
        return None, None, fields


def _chunk_of(unit: dict) -> FileChunk:
    """The jsonl chunk a Ray row carries (text columns hold "" for None: see `annotate_pairs`)."""
    return FileChunk(**{k: (unit[k] or None) if k in ("reason", "detail") else unit[k]
                        for k in FileChunk.__dataclass_fields__})


def annotate_pair_units(units: dict[str, np.ndarray], cfg: CorpusConfig, lexicon: list[str]):
    yield from PairAnnotator(cfg, lexicon)(units)


def annotate_pairs(raw_dir: Path, cfg: CorpusConfig):
    """A lazy Ray Dataset with one annotated record per pair candidate."""
    import ray.data

    chunks, pages = plan_units(raw_dir)
    units = [{"kind": "jsonl", **asdict(c)} for c in chunks]
    page_units = [{"kind": "page", **asdict(p)} for p in pages]
    if not units and not page_units:
        raise FileNotFoundError(f"no pair sources: expected {raw_dir}/pairs/**/*.jsonl or {raw_dir}/html/**/*.html")
    keys = sorted({k for u in units + page_units for k in u})
    # one column type per key across both kinds of unit: strings default to "", numbers to -1
    text_keys = {"relative", "source", "path", "reason", "detail"}
    rows = [{k: (u.get(k) or "") if k in text_keys else u.get(k, -1) for k in keys} for u in units + page_units]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * cfg.num_workers)))
    return ds.map_batches(annotate_pair_units, batch_size=8, batch_format="numpy",
                          compute=ray.data.TaskPoolStrategy(size=cfg.num_workers),
                          fn_kwargs={"cfg": cfg, "lexicon": load_lexicon(cfg.text_rules.lexicon_path)})


def find_image_duplicates(batches, max_distance: int) -> pa.Table:
    """Among kept pairs, in corpus order: a reused id (the first record with it stays), then
    perceptual-hash near-duplicates among the rest (the first in corpus order stays)."""
    orders, ids, hashes = [], [], []
    for batch in batches:
        kept = batch.filter(pc.is_null(batch.column("reason")))
        orders.append(kept.column("order").to_numpy())
        ids.extend(kept.column("id").to_pylist())
        hashes.append(kept.column("phash").to_numpy())
    order = np.concatenate(orders) if orders else np.zeros(0, np.int64)
    hashes = np.concatenate(hashes).astype(np.uint64) if hashes else np.zeros(0, np.uint64)
    sort = np.argsort(order, kind="stable")
    order, hashes, ids = order[sort], hashes[sort], [ids[i] for i in sort]

    first_with_id: dict[str, int] = {}
    reused = np.zeros(len(order), bool)
    for i, record_id in enumerate(ids):
        if first_with_id.setdefault(record_id, i) != i:
            reused[i] = True
    rest = np.flatnonzero(~reused)
    rep = near_duplicate_representatives(hashes[rest], max_distance)
    near = np.flatnonzero(rep != np.arange(len(rep)))
    reused_rows = np.flatnonzero(reused)
    details = ([f"id already used by an earlier pair (order {order[first_with_id[ids[i]]]})" for i in reused_rows]
               + [f"image near-duplicate of {ids[rest[rep[i]]]}" for i in near])
    return pa.table({
        "order": pa.array(np.concatenate([order[reused_rows], order[rest[near]]]), pa.int64()),
        "reason": pa.array([str(Reason.DUPLICATE_ID)] * len(reused_rows)
                           + [str(Reason.IMAGE_NEAR_DUPLICATE)] * len(near), pa.large_string()),
        "detail": pa.array(details, pa.large_string()),
    }).sort_by("order")


def kept_pairs(batch: pa.Table) -> pa.Table:
    return batch.filter(pc.is_null(batch.column("reason"))).select(CLEAN_PAIRS_COLUMNS)


def quarantined_pairs(batch: pa.Table) -> pa.Table:
    dropped = batch.filter(pc.is_valid(batch.column("reason")))
    return pa.table({
        "id": dropped.column("id"), "source": dropped.column("source"),
        "modality": pa.array(["pairs"] * dropped.num_rows, pa.large_string()),
        "reason": dropped.column("reason"), "detail": dropped.column("detail"),
        "text": dropped.column("text"), "order": dropped.column("order"),
    })
