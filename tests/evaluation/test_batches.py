"""Human-evaluation batches are blind and complete; annotations come back as results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m6_pipeline.evaluation.annotations import summarise
from m6_pipeline.evaluation.batches import build_batch
from m6_pipeline.tasks.itm.evaluate import best_threshold, roc_auc

PREDICTIONS = {
    "caption": [{"id": f"c{i}", "prompt": "", "image_id": f"img{i}", "reference": "参考",
                 "outputs": {"pretrained": f"描述{i}", "baseline": f"基线{i}"}} for i in range(6)],
    "qa": [{"id": "q0", "prompt": "为什么？回答：", "reference": "人写的回答",
            "outputs": {"pretrained": "模型回答", "baseline": "乱码"}},
           {"id": "q1", "prompt": "怎么办？回答：", "reference": None,
            "outputs": {"pretrained": "模型回答2", "baseline": "乱码2"}}],
}


def test_batch_hides_models_and_keys_every_item():
    items, key = build_batch(PREDICTIONS, {"caption": 4, "qa": 10}, seed=7)
    assert len(items) == len(key) == 4 * 2 + 2 * 2 + 2  # 2 Turing pairs: q0 has a human answer
    text = json.dumps(items, ensure_ascii=False)
    assert "pretrained" not in text and "baseline" not in text
    assert {i["item_id"] for i in items} == set(key)
    for item in items:
        if item["kind"] == "qa_turing":
            options = item["output"]
            assert options[key[item["item_id"]]["human_is"]] == "人写的回答"
            assert list(options.values()).count("人写的回答") == 1
    again, _ = build_batch(PREDICTIONS, {"caption": 4, "qa": 10}, seed=7)
    other, _ = build_batch(PREDICTIONS, {"caption": 4, "qa": 10}, seed=8)
    assert [i["item_id"] for i in again] == [i["item_id"] for i in items]
    assert [i["output"] for i in other] != [i["output"] for i in items]


def test_annotations_give_means_intervals_and_agreement():
    items, key = build_batch(PREDICTIONS, {"caption": 6, "qa": 0}, seed=0)
    annotations = []
    for item in items:
        model = key[item["item_id"]]["model"]
        for annotator, noise in (("ann1", 0), ("ann2", 1)):
            score = (4 if model == "pretrained" else 1) + (noise if int(item["item_id"], 16) % 2 else 0)
            annotations.append({"item_id": item["item_id"], "annotator": annotator,
                                "scores": {"grammar": min(score, 5), "correctness": 3, "richness": 2}})
    out = summarise(annotations, key)
    grammar = out["results"]["caption"]
    assert grammar["pretrained"]["grammar"]["mean"] > grammar["baseline"]["grammar"]["mean"]
    assert grammar["pretrained"]["grammar"]["low"] <= grammar["pretrained"]["grammar"]["mean"]
    assert grammar["pretrained"]["grammar"]["n"] == 12
    assert 0.5 < out["agreement"]["caption"]["grammar"] <= 1.0
    assert out["annotators"] == {"ann1": 12, "ann2": 12}


def test_annotations_outside_the_batch_or_range_are_refused():
    items, key = build_batch(PREDICTIONS, {"caption": 1, "qa": 0}, seed=0)
    with pytest.raises(ValueError, match="unknown item"):
        summarise([{"item_id": "nope", "annotator": "a", "scores": {"grammar": 3}}], key)
    with pytest.raises(ValueError, match="outside"):
        summarise([{"item_id": items[0]["item_id"], "annotator": "a", "scores": {"grammar": 7}}], key)
    with pytest.raises(ValueError, match="not one of"):
        summarise([{"item_id": items[0]["item_id"], "annotator": "a", "scores": {"beauty": 3}}], key)


def test_turing_judgements_score_how_often_the_model_passed():
    items, key = build_batch(PREDICTIONS, {"caption": 0, "qa": 10}, seed=1)
    turing = [i for i in items if i["kind"] == "qa_turing"]
    fooled = {"pretrained": True, "baseline": False}
    annotations = []
    for item in turing:
        entry = key[item["item_id"]]
        wrong = "A" if entry["human_is"] == "B" else "B"
        annotations.append({"item_id": item["item_id"], "annotator": "a",
                            "scores": {"human_is": wrong if fooled[entry["model"]] else entry["human_is"]}})
    out = summarise(annotations, key)["results"]["qa_turing"]
    assert out["pretrained"]["fooled"]["mean"] == 1.0 and out["baseline"]["fooled"]["mean"] == 0.0


def test_threshold_and_auc_on_known_scores():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(scores, labels) == pytest.approx(0.75)  # 3 of the 4 (pos, neg) pairs ordered right
    t = best_threshold(scores, labels)
    assert ((scores > t) == labels).mean() == 0.75
    assert roc_auc(np.array([1.0, 2.0]), np.array([0, 1])) == 1.0
