"""Global deduplication of records that passed every per-document rule.

The driver streams the annotated records' keys once and keeps, per distinct text, only its
first record's id and MinHash signature: memory grows with the number of distinct texts, not
with the corpus (a corpus repeated 10x costs 16 bytes a repeated record). Decisions, in order:
exact duplicates (same cleaned text), reused ids (same `id`, different text), near duplicates
(MinHash LSH, verified). The first record in corpus order always stays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from m6_pipeline.corpus.config import NearDuplicates
from m6_pipeline.corpus.near_duplicates import estimated_jaccard, near_duplicate_clusters
from m6_pipeline.corpus.reasons import Reason

# reason and detail are dictionary-encoded: a corpus repeated 40x has 40 records "duplicate of"
# the same id, and the table travels to every routing task (16 bytes a duplicate, not ~60)
_CODED = pa.dictionary(pa.int32(), pa.large_string())
DUPLICATE_SCHEMA = pa.schema([("order", pa.int64()), ("reason", _CODED), ("detail", _CODED)])
KEY_COLUMNS = ["order", "id", "exact_hash", "minhash", "reason"]


def key_columns(signatures: bool) -> list[str]:
    """The columns `DedupKeys` reads: the MinHash signature only for near-duplicate detection."""
    return [c for c in KEY_COLUMNS if signatures or c != "minhash"]


class DedupKeys:
    """Streams batches of annotated records; keeps (order, text hash) of every kept record
    (16 bytes) and (order, id, signature) of the first record of each distinct text.

    With `signatures=False` (near-duplicate detection off) no MinHash signature is kept.
    """

    def __init__(self, compact_every: int = 1 << 16, signatures: bool = True):
        self._orders: list[np.ndarray] = []
        self._hashes: list[np.ndarray] = []
        self._firsts: list[pa.Table] = []
        self._pending = 0
        self._compact_every = compact_every
        self.signatures = signatures

    def add(self, batch: pa.Table) -> None:
        kept = np.flatnonzero(pc.is_null(batch.column("reason")).to_numpy(zero_copy_only=False))
        if len(kept) == 0:
            return
        order = batch.column("order").to_numpy()[kept]
        text_hash = batch.column("exact_hash").to_numpy()[kept]
        self._orders.append(order)
        self._hashes.append(text_hash)
        # only the first row of each text in this batch is copied (with its signature)
        by = np.lexsort((order, text_hash))
        first = by[np.concatenate(([True], text_hash[by][1:] != text_hash[by][:-1]))]
        columns = ["order", "id", "exact_hash"] + (["minhash"] if self.signatures else [])
        self._firsts.append(batch.select(columns).take(pa.array(kept[first])))
        self._pending += len(kept)
        if self._pending >= self._compact_every:
            self._firsts = [_first_per_hash(pa.concat_tables(self._firsts))]
            self._pending = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, pa.Table]:
        """(orders, text hashes) of all kept records; the first record per text."""
        cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))
        firsts = _first_per_hash(pa.concat_tables(self._firsts)) if self._firsts else None
        return cat(self._orders, np.int64), cat(self._hashes, np.uint64), firsts


def _first_per_hash(table: pa.Table) -> pa.Table:
    """The lowest-order row of each exact hash."""
    if table.num_rows == 0:
        return table
    idx = np.lexsort((table.column("order").to_numpy(), table.column("exact_hash").to_numpy()))
    h = table.column("exact_hash").to_numpy()[idx]
    first = idx[np.concatenate(([True], h[1:] != h[:-1]))]
    return table.take(pa.array(first))


def _group_first(keys: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows grouped by `keys`: the row index of each row's group-first (lowest order)."""
    by = np.lexsort((order, keys))
    k = keys[by]
    start = np.concatenate(([True], k[1:] != k[:-1]))
    first = np.empty(len(keys), dtype=np.int64)
    first[by] = by[np.maximum.accumulate(np.where(start, np.arange(len(by)), 0))]
    return first, by


def _prefixed(prefix: str, values: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix, pa.large_string()), pc.cast(values, pa.large_string()),
                                       pa.scalar("", pa.large_string()))


def find_duplicates(keys: DedupKeys, near: NearDuplicates) -> pa.Table:
    """One row (`order`, `reason`, `detail`) for every record to drop as a duplicate."""
    if near.enabled and not keys.signatures:
        raise ValueError("near-duplicate detection needs MinHash signatures: collect the keys with "
                         "signatures=True")
    order, text_hash, firsts = keys.arrays()
    if len(order) == 0:
        return DUPLICATE_SCHEMA.empty_table()
    first_ids = firsts.column("id").combine_chunks()
    first_of_hash = pd.Index(firsts.column("exact_hash").to_numpy()).get_indexer(text_hash)
    rep_order = firsts.column("order").to_numpy()[first_of_hash]
    out = []

    exact = rep_order != order
    # one "duplicate of <id>" string per distinct text, indexed by every copy
    out.append((order[exact], Reason.EXACT_DUPLICATE, pa.DictionaryArray.from_arrays(
        pa.array(first_of_hash[exact].astype(np.int32)), _prefixed("duplicate of ", first_ids))))

    # the survivors of exact deduplication are the first records of each text: reused ids there
    first_order = firsts.column("order").to_numpy()
    id_hash = pd.util.hash_array(np.asarray(first_ids.to_numpy(zero_copy_only=False), dtype=object))
    group_first, _ = _group_first(id_hash.astype(np.uint64), first_order)
    reused = group_first != np.arange(len(first_order))
    out.append((first_order[reused], Reason.DUPLICATE_ID,
                pa.array([f"id already used by an earlier record with other text (order {o})"
                          for o in first_order[group_first[reused]]], pa.large_string()).dictionary_encode()))

    if near.enabled and firsts.num_rows > 1:
        by_order = np.argsort(firsts.column("order").to_numpy())
        firsts = firsts.take(pa.array(by_order))
        still = ~np.isin(firsts.column("order").to_numpy(), first_order[reused])
        firsts = firsts.filter(pa.array(still))
        mh = firsts.column("minhash").combine_chunks()
        sig = mh.flatten().to_numpy(zero_copy_only=False).reshape(-1, mh.type.list_size)
        rep = near_duplicate_clusters(sig, near.bands, near.threshold)
        rows = np.flatnonzero(rep != np.arange(len(rep)))
        similarity = estimated_jaccard(sig[rows], sig[rep[rows]])
        ids = firsts.column("id").to_pylist()
        out.append((firsts.column("order").to_numpy()[rows], Reason.NEAR_DUPLICATE,
                    pa.array([f"near-duplicate of {ids[r]} (estimated Jaccard {s:.2f})"
                              for r, s in zip(rep[rows], similarity)], pa.large_string()).dictionary_encode()))
    reasons = [pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(o), np.int32)),
                                              pa.array([str(r)], pa.large_string())) for o, r, _ in out]
    table = pa.table({
        "order": pa.array(np.concatenate([o for o, _, _ in out]), pa.int64()),
        "reason": pa.chunked_array(reasons, _CODED),
        "detail": pa.chunked_array([d for _, _, d in out], _CODED),
    }, schema=DUPLICATE_SCHEMA)
    # sorted once here, searched by every batch
    return table.unify_dictionaries().combine_chunks().sort_by("order")


def apply_duplicates(batch: pa.Table, duplicates: pa.Table) -> pa.Table:
    """Set the reasons of `find_duplicates` on their records (a Ray Data batch UDF).

    `duplicates` is sorted by `order` (as `find_duplicates` returns it). Vectorised: a binary
    search and Arrow `take`, no per-row Python.
    """
    if duplicates.num_rows == 0 or batch.num_rows == 0:
        return batch
    dup_order = duplicates.column("order").to_numpy()
    order = batch.column("order").to_numpy()
    pos = np.minimum(np.searchsorted(dup_order, order), len(dup_order) - 1)
    hit = dup_order[pos] == order
    if not hit.any():
        return batch
    take = pa.array(np.where(hit, pos, 0))
    mask = pa.array(hit)
    for name in ("reason", "detail"):
        new = pc.cast(pc.take(duplicates.column(name), take), pa.large_string())
        merged = pc.if_else(mask, new, batch.column(name))
        batch = batch.set_column(batch.schema.get_field_index(name), name, merged)
    return batch


def collect_keys(batches, signatures: bool = True) -> DedupKeys:
    keys = DedupKeys(signatures=signatures)
    for batch in batches:
        keys.add(batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch]))
    return keys
