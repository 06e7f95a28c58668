"""The annotation store: one SQLite file in WAL mode. Every write is one transaction begun
IMMEDIATE (the writer lock is taken up front, so two annotators submitting at once queue on the
busy timeout instead of failing or losing a row); reads see a consistent snapshot.

Who may do what is decided here, not in the pages: an `Annotator` comes only from `sign_in`
with a valid token; annotators read their own queue and the images of their own items, never
others' answers or which model wrote an item (the key is a separate table only admin reads touch).
Commands that create annotators or load batches are the owner's (the admin CLI)."""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from m6_pipeline.annotation.tokens import AccessDenied, hash_secret, matches, new_secret, parse_token, token_of
from m6_pipeline.evaluation.batches import CRITERIA

SCHEMA = """
CREATE TABLE IF NOT EXISTS annotators (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')),
    salt BLOB NOT NULL, token_hash BLOB NOT NULL, active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, seed INTEGER NOT NULL, n_items INTEGER NOT NULL, loaded_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, batch_id TEXT NOT NULL REFERENCES batches (id), kind TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS item_keys (item_id TEXT PRIMARY KEY REFERENCES items (id), payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (key TEXT PRIMARY KEY, png BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS queue_orders (
    annotator_id TEXT NOT NULL REFERENCES annotators (id), batch_id TEXT NOT NULL REFERENCES batches (id),
    seed INTEGER NOT NULL, PRIMARY KEY (annotator_id, batch_id));
CREATE TABLE IF NOT EXISTS assignments (
    annotator_id TEXT NOT NULL REFERENCES annotators (id), item_id TEXT NOT NULL REFERENCES items (id),
    position INTEGER NOT NULL, PRIMARY KEY (annotator_id, item_id));
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, annotator_id TEXT NOT NULL, item_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scored', 'skipped', 'flagged')),
    scores TEXT NOT NULL, comment TEXT, seconds REAL, created_at TEXT NOT NULL, undone_at TEXT,
    FOREIGN KEY (annotator_id, item_id) REFERENCES assignments (annotator_id, item_id));
CREATE UNIQUE INDEX IF NOT EXISTS one_live_answer ON annotations (annotator_id, item_id) WHERE undone_at IS NULL;
"""
STATUSES = ("scored", "skipped", "flagged")


class AlreadyAnswered(ValueError):
    """The annotator already has a live answer for this item (a double submit, a second tab)."""


@dataclass(frozen=True)
class Annotator:
    id: str
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class QueueItem:
    """What an annotator is shown: no model, no key, no other annotator's answer."""
    item_id: str
    kind: str
    prompt: str
    output: str | dict
    image_key: str | None
    criteria: dict
    position: int  # 1-based place in this annotator's queue


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_scores(kind: str, status: str, scores: dict, comment: str | None) -> None:
    """A scored answer gives every criterion of its kind a value in range; a skip gives none;
    a flag gives none and says why."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    if status != "scored":
        if scores:
            raise ValueError(f"a {status} answer carries no scores")
        if status == "flagged" and not (comment or "").strip():
            raise ValueError("a flag needs a comment saying what is wrong with the item")
        return
    criteria = CRITERIA[kind]
    if set(scores) != set(criteria):
        raise ValueError(f"{kind} items are scored on {sorted(criteria)}; got {sorted(scores)}")
    for name, value in scores.items():
        allowed = criteria[name]
        if isinstance(allowed[0], str):
            if value not in allowed:
                raise ValueError(f"{name}={value!r}: expected one of {allowed}")
        elif isinstance(value, bool) or not isinstance(value, int) or not allowed[0] <= value <= allowed[1]:
            raise ValueError(f"{name}={value!r}: expected a whole number in {allowed}")


class AnnotationStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.executescript(SCHEMA)  # IF NOT EXISTS throughout: opening an existing store changes nothing
        finally:
            db.close()
        os.chmod(self.path, 0o600)  # scores and token hashes: the owner's eyes only

    # -- connections ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a crash of the app
        return db

    @contextmanager
    def _write(self):
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            if db.in_transaction:
                db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @contextmanager
    def _read(self):
        db = self._connect()
        try:
            db.execute("BEGIN")  # one snapshot for every query of the block
            yield db
        finally:
            db.execute("ROLLBACK")
            db.close()

    # -- the owner's commands (admin CLI) ------------------------------------------------------
    def create_annotator(self, name: str, role: str = "annotator") -> str:
        """A new annotator (or admin); returns the token, shown once: only its hash is kept."""
        name = name.strip()
        if not name:
            raise ValueError("an annotator needs a name")
        annotator_id = format(zlib.crc32(f"{name}:{_now()}".encode()), "08x")
        secret, salt = new_secret(), os.urandom(16)
        with self._write() as db:
            if db.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"an annotator named {name!r} exists; rotate their token instead")
            db.execute("INSERT INTO annotators (id, name, role, salt, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (annotator_id, name, role, salt, hash_secret(secret, salt), _now()))
        return token_of(annotator_id, secret)

    def rotate_token(self, name: str) -> str:
        """A new token for `name`; the old one stops working."""
        secret, salt = new_secret(), os.urandom(16)
        with self._write() as db:
            row = db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(f"no annotator named {name!r}")
            db.execute("UPDATE annotators SET salt = ?, token_hash = ?, active = 1 WHERE id = ?",
                       (salt, hash_secret(secret, salt), row[0]))
        return token_of(row[0], secret)

    def deactivate(self, name: str) -> None:
        with self._write() as db:
            if db.execute("UPDATE annotators SET active = 0 WHERE name = ?", (name,)).rowcount == 0:
                raise KeyError(f"no annotator named {name!r}")

    def load_batch(self, items: list[dict], key: dict, images: dict[str, bytes], seed: int) -> str:
        """Store a batch (items, their key, their images); loading it again changes nothing."""
        if missing := [i["item_id"] for i in items if i["item_id"] not in key]:
            raise ValueError(f"{len(missing)} items have no key entry (e.g. {missing[:3]}): items.json and key.json are of different batches")
        wanted = {i["image_key"] for i in items if i.get("image_key")} | {
            i["output"] for i in items if i["kind"] == "t2i"}
        if lost := wanted - images.keys():
            raise ValueError(f"{len(lost)} images of the batch are missing from its images (e.g. {sorted(lost)[:3]})")
        batch_id = format(zlib.crc32("|".join(sorted(i["item_id"] for i in items)).encode()), "08x")
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO batches (id, seed, n_items, loaded_at) VALUES (?, ?, ?, ?)",
                       (batch_id, seed, len(items), _now()))
            db.executemany("INSERT OR IGNORE INTO items (id, batch_id, kind, payload) VALUES (?, ?, ?, ?)",
                           [(i["item_id"], batch_id, i["kind"], json.dumps(i, ensure_ascii=False)) for i in items])
            db.executemany("INSERT OR REPLACE INTO item_keys (item_id, payload) VALUES (?, ?)",
                           [(i["item_id"], json.dumps(key[i["item_id"]])) for i in items])
            db.executemany("INSERT OR IGNORE INTO images (key, png) VALUES (?, ?)",
                           [(k, images[k]) for k in sorted(wanted)])
        return batch_id

    def assign(self, batch_id: str, per_item: int, seed: int) -> dict[str, int]:
        """Give every item of the batch `per_item` distinct annotators, least-loaded first, and
        append the new items to each annotator's queue in an order shuffled with a seed of their
        own (recorded in queue_orders). Existing assignments stay; running it again after new
        annotators join tops items up. Returns {annotator name: items in their queue}."""
        with self._write() as db:
            people = db.execute("SELECT id, name FROM annotators WHERE role = 'annotator' AND active = 1 ORDER BY id").fetchall()
            if len(people) < per_item:
                raise ValueError(f"{per_item} annotators per item, but only {len(people)} active annotators: create more first")
            items = [r[0] for r in db.execute("SELECT id FROM items WHERE batch_id = ? ORDER BY id", (batch_id,))]
            if not items:
                raise KeyError(f"no batch {batch_id!r} in the store: load it first")
            holders: dict[str, set] = {i: set() for i in items}
            load = {a: 0 for a, _ in people}
            for annotator_id, item_id in db.execute(
                    "SELECT a.annotator_id, a.item_id FROM assignments a JOIN items i ON i.id = a.item_id WHERE i.batch_id = ?",
                    (batch_id,)):
                holders[item_id].add(annotator_id)
                load[annotator_id] = load.get(annotator_id, 0) + 1
            rng = np.random.default_rng(seed)
            tiebreak = dict(zip(load, rng.random(len(load))))
            new: dict[str, list[str]] = {a: [] for a, _ in people}
            for index in rng.permutation(len(items)):
                item_id = items[index]
                free = sorted((a for a, _ in people if a not in holders[item_id]), key=lambda a: (load[a], tiebreak[a]))
                for annotator_id in free[: max(0, per_item - len(holders[item_id]))]:
                    holders[item_id].add(annotator_id)
                    load[annotator_id] += 1
                    new[annotator_id].append(item_id)
            for annotator_id, added in new.items():
                order_seed = zlib.crc32(f"{seed}:{batch_id}:{annotator_id}".encode())
                db.execute("INSERT OR IGNORE INTO queue_orders (annotator_id, batch_id, seed) VALUES (?, ?, ?)",
                           (annotator_id, batch_id, order_seed))
                start = db.execute("SELECT COALESCE(MAX(position), 0) FROM assignments WHERE annotator_id = ?",
                                   (annotator_id,)).fetchone()[0]
                shuffled = [sorted(added)[i] for i in np.random.default_rng(order_seed).permutation(len(added))]
                db.executemany("INSERT INTO assignments (annotator_id, item_id, position) VALUES (?, ?, ?)",
                               [(annotator_id, item_id, start + k + 1) for k, item_id in enumerate(shuffled)])
            return {name: load[a] for a, name in people}

    # -- annotators ----------------------------------------------------------------------------
    def sign_in(self, token: str) -> Annotator:
        annotator_id, secret = parse_token(token)
        with self._read() as db:
            row = db.execute("SELECT name, role, salt, token_hash, active FROM annotators WHERE id = ?",
                             (annotator_id,)).fetchone()
        if row is None or not row[4] or not matches(secret, row[2], row[3]):
            raise AccessDenied("unknown or revoked token: ask the admin for yours")
        return Annotator(annotator_id, row[0], row[1])

    def next_item(self, annotator: Annotator) -> QueueItem | None:
        """The first item of the annotator's queue without a live answer (resume = this)."""
        with self._read() as db:
            row = db.execute(
                """SELECT i.payload, a.position FROM assignments a JOIN items i ON i.id = a.item_id
                   WHERE a.annotator_id = ? AND NOT EXISTS (
                       SELECT 1 FROM annotations n WHERE n.annotator_id = a.annotator_id
                       AND n.item_id = a.item_id AND n.undone_at IS NULL)
                   ORDER BY a.position LIMIT 1""", (annotator.id,)).fetchone()
        if row is None:
            return None
        item = json.loads(row[0])
        return QueueItem(item["item_id"], item["kind"], item.get("prompt") or "", item["output"],
                         item.get("image_key"), item["criteria"], row[1])

    def progress(self, annotator: Annotator) -> tuple[int, int]:
        """(answered, assigned) for this annotator."""
        with self._read() as db:
            total = db.execute("SELECT COUNT(*) FROM assignments WHERE annotator_id = ?", (annotator.id,)).fetchone()[0]
            done = db.execute("SELECT COUNT(*) FROM annotations WHERE annotator_id = ? AND undone_at IS NULL",
                              (annotator.id,)).fetchone()[0]
        return done, total

    def image(self, annotator: Annotator, key: str) -> bytes:
        """An image of one of the annotator's own items (admins: any)."""
        with self._read() as db:
            if not annotator.is_admin and not db.execute(
                    """SELECT 1 FROM assignments a JOIN items i ON i.id = a.item_id WHERE a.annotator_id = ?
                       AND (json_extract(i.payload, '$.image_key') = ? OR
                            (i.kind = 't2i' AND json_extract(i.payload, '$.output') = ?)) LIMIT 1""",
                    (annotator.id, key, key)).fetchone():
                raise AccessDenied("that image belongs to no item of yours")
            row = db.execute("SELECT png FROM images WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(f"image {key} is not in the store: reload the batch")
        return row[0]

    def submit(self, annotator: Annotator, item_id: str, scores: dict, seconds: float,
               status: str = "scored", comment: str | None = None) -> int:
        """Record one answer (scored, skipped or flagged) with the seconds spent on the item."""
        with self._write() as db:
            row = db.execute("SELECT i.kind FROM assignments a JOIN items i ON i.id = a.item_id "
                             "WHERE a.annotator_id = ? AND a.item_id = ?", (annotator.id, item_id)).fetchone()
            if row is None:
                raise AccessDenied(f"item {item_id} is not assigned to {annotator.name}")
            check_scores(row[0], status, scores, comment)
            try:
                cursor = db.execute(
                    "INSERT INTO annotations (annotator_id, item_id, status, scores, comment, seconds, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (annotator.id, item_id, status, json.dumps(scores), (comment or "").strip() or None,
                     float(seconds), _now()))
            except sqlite3.IntegrityError as error:
                raise AlreadyAnswered(f"item {item_id} is already answered by {annotator.name}") from error
            return cursor.lastrowid

    def undo_last(self, annotator: Annotator) -> str | None:
        """Withdraw the annotator's latest live answer (kept, marked undone); its item comes
        back to the front of the queue. None when there is nothing to undo."""
        with self._write() as db:
            row = db.execute("SELECT id, item_id FROM annotations WHERE annotator_id = ? AND undone_at IS NULL "
                             "ORDER BY id DESC LIMIT 1", (annotator.id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE annotations SET undone_at = ? WHERE id = ?", (_now(), row[0]))
            return row[1]

    # -- admin reads -----------------------------------------------------------------------------
    def answers(self, admin: Annotator, include_undone: bool = False) -> list[dict]:
        """Every answer with its annotator's name and the item's key (task, model): admins only."""
        if not admin.is_admin:
            raise AccessDenied("results are for admins")
        return self.owner_answers(include_undone)

    def owner_answers(self, include_undone: bool = False) -> list[dict]:
        """Every answer with its key, for whoever holds the file (the admin command, the
        evaluate pipeline); the app reaches them only through `answers` and its role check."""
        where = "" if include_undone else "WHERE n.undone_at IS NULL"
        with self._read() as db:
            rows = db.execute(
                f"""SELECT n.item_id, p.name, n.status, n.scores, n.comment, n.seconds, n.created_at, n.undone_at,
                           k.payload, i.kind
                    FROM annotations n JOIN annotators p ON p.id = n.annotator_id
                    JOIN items i ON i.id = n.item_id JOIN item_keys k ON k.item_id = n.item_id {where}
                    ORDER BY n.id""").fetchall()
        return [{"item_id": r[0], "annotator": r[1], "status": r[2], "scores": json.loads(r[3]), "comment": r[4],
                 "seconds": r[5], "created_at": r[6], "undone_at": r[7], "key": json.loads(r[8]), "kind": r[9]}
                for r in rows]

    def annotator_table(self, admin: Annotator) -> list[dict]:
        if not admin.is_admin:
            raise AccessDenied("the annotator list is for admins")
        with self._read() as db:
            rows = db.execute(
                """SELECT p.name, p.role, p.active,
                          (SELECT COUNT(*) FROM assignments a WHERE a.annotator_id = p.id),
                          (SELECT COUNT(*) FROM annotations n WHERE n.annotator_id = p.id AND n.undone_at IS NULL)
                   FROM annotators p ORDER BY p.name""").fetchall()
        return [{"annotator": r[0], "role": r[1], "active": bool(r[2]), "assigned": r[3], "answered": r[4]} for r in rows]
