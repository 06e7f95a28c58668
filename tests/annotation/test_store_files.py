"""The store's file under real use: an online backup and a restore round trip, files written
0600, and a locked, damaged or read-only store reported with a message a person can act on
(the annotator's without paths; the admin's with the path and what to do)."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from m6_pipeline.annotation import admin
from m6_pipeline.annotation.store import AnnotationStore, StoreUnavailable, _unavailable


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def answer_next(store, token, status="skipped"):
    who = store.sign_in(token)
    item = store.next_item(who)
    store.submit(who, item.item_id, {}, 2.0, status)
    return item.item_id


def test_backup_and_restore_round_trip(store, batch, tmp_path):
    token = store.create_annotator("li")
    store.create_annotator("wang")
    items, key, images = batch
    store.assign(store.load_batch(items, key, images, seed=1), 2, seed=1)
    kept = answer_next(store, token)
    copy = store.backup(tmp_path / "backups" / "store.sqlite")
    assert mode(copy) == 0o600
    answer_next(store, token)
    assert len(store.owner_answers()) == 2
    store.restore(copy)
    assert [a["item_id"] for a in store.owner_answers()] == [kept]
    assert store.next_item(store.sign_in(token)).item_id != kept  # the queue goes on from the backup
    with pytest.raises(ValueError, match="another file"):
        store.backup(store.path)


def test_restore_refuses_what_is_not_a_whole_store(store, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not an annotation store"):
        store.restore(junk)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ValueError, match="not a whole annotation store"):
        store.restore(other)
    with pytest.raises(FileNotFoundError):
        store.restore(tmp_path / "missing.sqlite")


def test_admin_exports_and_backups_are_private(store, tmp_path, capsys):
    store.create_annotator("li")
    out = tmp_path / "exports" / "answers.csv"
    out.parent.mkdir()
    out.write_text("old")
    out.chmod(0o644)  # an older export, readable by all: rewritten private
    assert admin.main(["--store", str(store.path), "export", "--format", "csv", "--out", str(out)]) == 0
    assert mode(out) == 0o600 and out.read_text().startswith("item_id,")
    assert admin.main(["--store", str(store.path), "backup", str(tmp_path / "b.sqlite")]) == 0
    assert mode(tmp_path / "b.sqlite") == 0o600 and mode(store.path) == 0o600
    admin.main(["--store", str(store.path), "deactivate", "li"])
    admin.main(["--store", str(store.path), "rotate-token", "li"])
    assert "reactivate li" in capsys.readouterr().err
    admin.main(["--store", str(store.path), "reactivate", "li"])
    assert store.is_active("li")


def test_a_damaged_store_is_reported_not_raised_as_sqlite(tmp_path):
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"\x00garbage, not SQLite\x00" * 512)
    with pytest.raises(StoreUnavailable) as raised:
        AnnotationStore(path)
    assert str(tmp_path) not in str(raised.value) and "Tell your admin" in str(raised.value)
    assert str(path) in raised.value.detail and "restore the latest backup" in raised.value.detail


def test_a_locked_store_is_reported_after_the_busy_timeout(store, batch, tmp_path):
    token = store.create_annotator("li")
    store.create_annotator("wang")
    items, key, images = batch
    store.assign(store.load_batch(items, key, images, seed=1), 2, seed=1)
    who = store.sign_in(token)
    item = store.next_item(who)
    impatient = AnnotationStore(store.path, busy_timeout_s=0.2)
    holder = sqlite3.connect(store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        with pytest.raises(StoreUnavailable) as raised:
            impatient.submit(who, item.item_id, {}, 1.0, "skipped")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked by another program" in raised.value.detail
    impatient.submit(who, item.item_id, {}, 1.0, "skipped")  # the lock gone, the answer is taken


@pytest.mark.parametrize("error, advice", [
    (sqlite3.OperationalError("attempt to write a readonly database"), "write access"),
    (sqlite3.OperationalError("unable to open database file"), "folder exists"),
    (sqlite3.DatabaseError("database disk image is malformed"), "restore the latest backup"),
    (sqlite3.OperationalError("database is locked"), "close it, then retry"),
])
def test_each_kind_of_failure_says_what_to_do(tmp_path, error, advice):
    reported = _unavailable(tmp_path / "s.sqlite", error)
    assert advice in reported.detail and str(tmp_path) not in str(reported)
