import random

import numpy as np
from datasketch import MinHash

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.corpus.near_duplicates import MinHasher, estimated_jaccard, near_duplicate_clusters

BASE = ("今天天气很好，我们一起去公园散步，看到很多人在放风筝，孩子们笑得很开心。"
        "傍晚回家的路上买了一些水果和蔬菜，准备做一顿丰盛的晚餐。")


def shingles(text, n=5):
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def test_signature_jaccard_tracks_exact_jaccard_like_datasketch():
    rng = random.Random(0)
    edited = list(BASE)
    for _ in range(6):
        edited[rng.randrange(len(edited))] = "啊"
    edited = "".join(edited)
    exact = len(shingles(BASE) & shingles(edited)) / len(shingles(BASE) | shingles(edited))
    sig = MinHasher(num_perm=256).signatures(CodepointBatch.from_strings([BASE, edited]))
    ours = estimated_jaccard(sig[:1], sig[1:])[0]
    a, b = MinHash(num_perm=256), MinHash(num_perm=256)
    a.update_batch([s.encode() for s in shingles(BASE)])
    b.update_batch([s.encode() for s in shingles(edited)])
    assert abs(ours - exact) < 0.1
    assert abs(ours - a.jaccard(b)) < 0.12


def test_signatures_are_deterministic_and_batch_independent():
    hasher = MinHasher()
    alone = hasher.signatures(CodepointBatch.from_strings([BASE]))
    mixed = hasher.signatures(CodepointBatch.from_strings(["别的文本内容在这里", BASE, "短"]))
    np.testing.assert_array_equal(alone[0], mixed[1])


def test_clusters_keep_the_first_and_drop_near_copies():
    other = "人民日报社论：坚持改革开放，推动经济社会持续健康发展，不断提高人民生活水平。" * 2
    near = BASE[:-3] + "晚饭。"
    texts = [BASE, other, near, "完全不同的一段话，讲的是计算机科学和数学的关系以及未来的发展方向。"]
    sig = MinHasher().signatures(CodepointBatch.from_strings(texts))
    rep = near_duplicate_clusters(sig, bands=16, threshold=0.7)
    assert rep.tolist() == [0, 1, 0, 3]


def test_empty_signatures_never_match():
    sig = MinHasher().signatures(CodepointBatch.from_strings(["", "", BASE]))
    assert near_duplicate_clusters(sig, bands=16, threshold=0.7).tolist() == [0, 1, 2]
