"""The annotation store: tokens, blind balanced queues, answers, undo, access, and results that
the evaluate pipeline reads back."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.annotation.results import export_csv, export_jsonl, read_scored, results
from m6_pipeline.annotation.store import AlreadyAnswered, AnnotationStore, check_scores
from m6_pipeline.annotation.tokens import AccessDenied


def full_scores(criteria: dict, pick=0) -> dict:
    return {c: (a[pick % len(a)] if isinstance(a[0], str) else a[0] + pick % (a[1] - a[0] + 1)) for c, a in criteria.items()}


def loaded(store: AnnotationStore, batch, n_annotators=3, per_item=2):
    items, key, images = batch
    tokens = {f"ann{k}": store.create_annotator(f"ann{k}") for k in range(n_annotators)}
    admin_token = store.create_annotator("boss", role="admin")
    batch_id = store.load_batch(items, key, images, seed=3)
    store.assign(batch_id, per_item, seed=3)
    return tokens, admin_token, batch_id


def test_tokens_are_stored_hashed_and_only_valid_ones_sign_in(store, tmp_path):
    token = store.create_annotator("li")
    who = store.sign_in(token)
    assert who.name == "li" and not who.is_admin
    raw = (tmp_path / "annotations.sqlite").read_bytes()
    assert token.split(".")[-1].encode() not in raw  # only the scrypt hash is on disk
    for bad in ("", "nonsense", token[:-1] + ("A" if token[-1] != "A" else "B"), "m6.ffffffff." + token.split(".")[-1]):
        with pytest.raises(AccessDenied):
            store.sign_in(bad)
    new = store.rotate_token("li")
    with pytest.raises(AccessDenied):
        store.sign_in(token)
    assert store.sign_in(new).name == "li"
    store.deactivate("li")
    with pytest.raises(AccessDenied, match="revoked"):
        store.sign_in(new)


def test_every_item_gets_distinct_annotators_in_balanced_shuffled_queues(store, batch):
    items, _, _ = batch
    tokens, _, batch_id = loaded(store, batch)
    queues = {}
    for name, token in tokens.items():
        who = store.sign_in(token)
        order = []
        while (item := store.next_item(who)) is not None:
            order.append(item.item_id)
            store.submit(who, item.item_id, {}, 1.0, status="skipped")
        queues[name] = order
    counts = Counter(i for order in queues.values() for i in order)
    assert set(counts) == {i["item_id"] for i in items} and set(counts.values()) == {2}
    assert max(map(len, queues.values())) - min(map(len, queues.values())) <= 1
    assert all(len(set(order)) == len(order) for order in queues.values())
    shared = set(queues["ann0"]) & set(queues["ann1"])
    assert [i for i in queues["ann0"] if i in shared] != [i for i in queues["ann1"] if i in shared] or len(shared) < 3
    # the recorded seeds reproduce each queue
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM queue_orders WHERE batch_id = ?", (batch_id,)).fetchone()[0] == 3
    # assigning again changes nothing; a new annotator tops nothing up (every item already has 2)
    store.create_annotator("late")
    assert store.assign(batch_id, 2, seed=3)["late"] == 0


def test_annotators_see_no_model_and_only_their_own_items(store, batch):
    items, key, _ = batch
    tokens, _, _ = loaded(store, batch)
    li = store.sign_in(tokens["ann0"])
    item = store.next_item(li)
    assert "model" not in json.dumps(item.__dict__) and "pretrained" not in json.dumps(item.__dict__)
    mine = set()
    while (nxt := store.next_item(li)) is not None:
        mine.add(nxt.item_id)
        store.submit(li, nxt.item_id, {}, 0.5, status="skipped")
    other = next(i for i in items if i["item_id"] not in mine)
    with pytest.raises(AccessDenied, match="not assigned"):
        store.submit(li, other["item_id"], full_scores(other["criteria"]), 1.0)
    foreign_image = next((i["image_key"] for i in items if i["image_key"] and i["item_id"] not in mine), None)
    if foreign_image and not any(i["image_key"] == foreign_image for i in items if i["item_id"] in mine):
        with pytest.raises(AccessDenied):
            store.image(li, foreign_image)
    with pytest.raises(AccessDenied):
        store.answers(li)
    with pytest.raises(AccessDenied):
        results(store, li)


def test_answers_resume_undo_and_refuse_bad_scores(store, batch):
    tokens, _, _ = loaded(store, batch)
    li = store.sign_in(tokens["ann1"])
    first = store.next_item(li)
    with pytest.raises(ValueError, match="scored on"):
        store.submit(li, first.item_id, {}, 1.0)
    bad = {c: 9 if not isinstance(a[0], str) else "C" for c, a in first.criteria.items()}
    with pytest.raises(ValueError, match="expected"):
        store.submit(li, first.item_id, bad, 1.0)
    with pytest.raises(ValueError, match="comment"):
        store.submit(li, first.item_id, {}, 1.0, status="flagged")
    store.submit(li, first.item_id, full_scores(first.criteria), 2.5)
    with pytest.raises(AlreadyAnswered):
        store.submit(li, first.item_id, full_scores(first.criteria), 2.5)
    second = store.next_item(li)
    assert second.item_id != first.item_id and store.progress(li)[0] == 1
    # a new session (another tab, tomorrow) resumes at the same place
    assert store.next_item(store.sign_in(tokens["ann1"])).item_id == second.item_id
    assert store.undo_last(li) == first.item_id
    assert store.next_item(li).item_id == first.item_id and store.progress(li)[0] == 0
    store.submit(li, first.item_id, full_scores(first.criteria, pick=1), 3.0)
    assert store.undo_last(store.sign_in(tokens["ann2"])) is None


def test_results_and_exports_follow_the_key_and_feed_evaluate(store, batch, tmp_path):
    items, key, _ = batch
    tokens, admin_token, _ = loaded(store, batch)
    for name, token in tokens.items():
        who = store.sign_in(token)
        while (item := store.next_item(who)) is not None:
            entry = key[item.item_id]
            good = entry["model"] == "pretrained"
            scores = {}
            for criterion, allowed in item.criteria.items():
                if criterion == "human_is":
                    scores[criterion] = entry["human_is"]
                else:
                    scores[criterion] = allowed[1] if good else allowed[0]
            store.submit(who, item.item_id, scores, 1.0)
    admin = store.sign_in(admin_token)
    out = results(store, admin)
    assert out["n_annotations"] == 2 * len(items)
    caption = out["results"]["caption"]
    assert caption["pretrained"]["grammar"]["mean"] == 5 and caption["baseline"]["grammar"]["mean"] == 0
    assert out["agreement"]["caption"]["grammar"] == pytest.approx(1.0)
    assert out["results"]["qa_turing"]["pretrained"]["fooled"]["mean"] == 0.0
    assert out["results"]["t2i"]["pretrained"]["faithfulness"]["n"] == 6
    lines = export_jsonl(store, admin).splitlines()
    assert len(lines) == 2 * len(items) and set(json.loads(lines[0])) == {"item_id", "annotator", "scores"}
    csv_text = export_csv(store, admin)
    assert csv_text.count("\n") == 2 * len(items) + 1 and "pretrained" in csv_text
    # the evaluate pipeline reads the same store: this batch's answers, none of another's
    assert len(read_scored(store.path, key)) == 2 * len(items)
    assert read_scored(store.path, {k: v for k, v in list(key.items())[:3]}) != []
    assert read_scored(tmp_path / "absent.sqlite", key) == []


def test_a_batch_with_missing_images_or_keys_is_refused(store, batch):
    items, key, images = batch
    with pytest.raises(ValueError, match="images"):
        store.load_batch(items, key, {}, seed=0)
    with pytest.raises(ValueError, match="no key"):
        store.load_batch(items, {}, images, seed=0)
    store.create_annotator("solo")
    batch_id = store.load_batch(items, key, images, seed=0)
    with pytest.raises(ValueError, match="only 1 active"):
        store.assign(batch_id, 2, seed=0)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["caption", "vqa", "poem", "qa_turing", "t2i"]),
       values=st.lists(st.one_of(st.integers(-2, 8), st.sampled_from(["A", "B", "C"]), st.booleans()), min_size=1, max_size=3))
def test_only_complete_in_range_scores_pass(kind, values):
    from m6_pipeline.evaluation.batches import CRITERIA
    criteria = CRITERIA[kind]
    scores = dict(zip(criteria, values))
    valid = set(scores) == set(criteria) and all(
        (v in a) if isinstance(a[0], str) else (type(v) is int and a[0] <= v <= a[1])
        for v, a in ((scores[c], criteria[c]) for c in criteria))
    if valid:
        check_scores(kind, "scored", scores, None)
    else:
        with pytest.raises(ValueError):
            check_scores(kind, "scored", scores, None)
