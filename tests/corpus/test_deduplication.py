import numpy as np
import pyarrow as pa

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.corpus.config import NearDuplicates
from m6_pipeline.corpus.deduplication import DedupKeys, apply_duplicates, collect_keys, find_duplicates
from m6_pipeline.corpus.near_duplicates import MinHasher

TEXTS = ["今天天气很好，我们一起去公园散步，看到很多人在放风筝，孩子们笑得很开心。",
         "人民日报社论：坚持改革开放，推动经济社会持续健康发展，不断提高人民生活水平。",
         "今天天气很好，我们一起去公园散步，看到很多人在放风筝，孩子们笑得很高兴。"]


def annotated(rows: list[tuple[int, str, str]], reason=None) -> pa.Table:
    """rows of (order, id, text) as the annotator emits them."""
    import pandas as pd

    texts = [t for _, _, t in rows]
    sig = MinHasher().signatures(CodepointBatch.from_strings(texts))
    return pa.table({
        "order": pa.array([o for o, _, _ in rows], pa.int64()),
        "id": pa.array([i for _, i, _ in rows], pa.large_string()),
        "exact_hash": pa.array(pd.util.hash_array(np.array(texts, dtype=object)).astype(np.uint64)),
        "minhash": pa.FixedSizeListArray.from_arrays(pa.array(sig.reshape(-1)), sig.shape[1]),
        "reason": pa.array([reason] * len(rows), pa.large_string()),
        "detail": pa.array([None] * len(rows), pa.large_string()),
    })


def decisions(table: pa.Table, **kw) -> dict[int, tuple[str, str]]:
    dups = find_duplicates(collect_keys([table]), NearDuplicates(**kw))
    return {o: (r, d) for o, r, d in zip(*(dups.column(c).to_pylist() for c in ("order", "reason", "detail")))}


def test_exact_id_and_near_duplicates_keep_the_first_in_corpus_order():
    table = annotated([(5, "b", TEXTS[0]), (1, "a", TEXTS[0]), (2, "c", TEXTS[1]), (3, "c", TEXTS[1] + "！"),
                       (4, "d", TEXTS[2])])
    got = decisions(table)
    assert got[5] == ("exact_duplicate", "duplicate of a")
    assert got[3][0] == "duplicate_id"
    assert got[4][0] == "near_duplicate" and got[4][1].startswith("near-duplicate of a")
    assert set(got) == {3, 4, 5}


def test_streaming_compaction_gives_the_same_decisions():
    rng = np.random.default_rng(0)
    rows = [(int(o), f"id{o}", TEXTS[rng.integers(3)] + ("" if rng.random() < 0.7 else str(o)))
            for o in rng.permutation(300)]
    table = annotated(rows)
    whole = find_duplicates(collect_keys([table]), NearDuplicates())
    keys = DedupKeys(compact_every=16)
    for batch in table.to_batches(max_chunksize=7):
        keys.add(pa.Table.from_batches([batch]))
    streamed = find_duplicates(keys, NearDuplicates())
    assert sorted(whole.to_pylist(), key=lambda r: r["order"]) == sorted(streamed.to_pylist(), key=lambda r: r["order"])


def test_records_with_a_reason_are_not_candidates():
    table = annotated([(1, "a", TEXTS[0])], reason="text_too_short")
    assert find_duplicates(collect_keys([table]), NearDuplicates()).num_rows == 0


def test_apply_duplicates_sets_reason_and_detail_only_on_hits():
    table = annotated([(1, "a", TEXTS[0]), (2, "b", TEXTS[0]), (3, "c", TEXTS[1])])
    table = table.set_column(4, "reason", pa.array([None, None, "perplexity"], pa.large_string()))
    dups = find_duplicates(collect_keys([table]), NearDuplicates())
    routed = apply_duplicates(table, dups)
    assert routed.column("reason").to_pylist() == [None, "exact_duplicate", "perplexity"]
    assert routed.column("detail").to_pylist() == [None, "duplicate of a", None]
