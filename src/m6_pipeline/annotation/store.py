"""The annotation store: one SQLite file in WAL mode. Every write is one transaction begun
IMMEDIATE (the writer lock is taken up front, so two annotators submitting at once queue on the
busy timeout instead of failing or losing a row); reads see a consistent snapshot.

Who may do what is decided here, not in the pages: an `Annotator` comes only from `sign_in`
with a valid token, and every call checks it again against the store (still active, the same
token version), so revoking or rotating a token ends a session that is already open at its next
action. Annotators read their own queue and the images of their own items, never others' answers
or which model wrote an item (the key is a separate table only admin reads touch). Commands that
create annotators or load batches are the owner's (the admin CLI)."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
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
    salt BLOB NOT NULL, token_hash BLOB NOT NULL, active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL,
    token_version INTEGER NOT NULL DEFAULT 0);
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
CREATE TABLE IF NOT EXISTS sign_in_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sign_in_failures_by_key ON sign_in_failures (key, at);
"""
STATUSES = ("scored", "skipped", "flagged")
MAX_SECONDS = 24 * 3600.0  # time on one item: a day at most (a tab left open overnight)
MAX_COMMENT_CHARS = 2000
REVOKED = "your access was revoked or your token was replaced: sign in again with your current token"
# failed sign-ins allowed per annotator id and per browser session within the window
MAX_FAILED_SIGN_INS, SIGN_IN_WINDOW_S = 5, 300.0
# sign-in hashes a secret for an unknown id too, so that its time does not say whether an id exists
_UNKNOWN_SALT = os.urandom(16)
_UNKNOWN_HASH = hash_secret(new_secret(), _UNKNOWN_SALT)


class AlreadyAnswered(ValueError):
    """The annotator already has a live answer for this item (a double submit, a second tab)."""


class StoreUnavailable(RuntimeError):
    """The store cannot be used as it is (locked, damaged, read-only, unreachable). `str()` is
    for whoever is in front of the app; `detail` (with the path and SQLite's error) for the admin
    and the log."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


def _unavailable(path: Path, error: sqlite3.Error) -> StoreUnavailable:
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        what = "is locked by another program (a long export, a backup, a sqlite3 shell): close it, then retry"
    elif "readonly" in text or "read-only" in text:
        what = "is read-only for the app: give the app's user write access to the file and its folder"
    elif "unable to open" in text:
        what = "cannot be opened: check that its folder exists and the app's user may write there"
    else:  # not a database, malformed image, disk I/O
        what = ("is damaged: restore the latest backup (python -m m6_pipeline.annotation.admin restore "
                "BACKUP) or move the file away to start an empty store")
    return StoreUnavailable(
        "The annotation store is unavailable; answers given so far are saved. Tell your admin.",
        f"annotation store {path} {what} (SQLite: {error})",
    )


def _store_error(error: BaseException) -> bool:
    """SQLite errors that mean the store itself is unusable (not a constraint a caller broke)."""
    return type(error) in (sqlite3.OperationalError, sqlite3.DatabaseError)


@dataclass(frozen=True)
class Annotator:
    id: str
    name: str
    role: str
    version: int = 0  # the token version signed in with: a rotation or revocation raises it

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


# whoever can open the store's file holds every right to it: the admin command, the evaluate pipeline
OWNER = Annotator("owner", "owner", "admin", version=-1)


def check_answer_bounds(seconds: float, comment: str | None) -> None:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) \
            or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"seconds on the item must be a number from 0 to {MAX_SECONDS:.0f}; got {seconds!r}")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"a comment holds at most {MAX_COMMENT_CHARS} characters; this one has {len(comment)}")


class AnnotationStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare()
        if os.access(self.path, os.W_OK):
            os.chmod(self.path, 0o600)  # scores and token hashes: the owner's eyes only

    def _prepare(self) -> None:
        """The schema, and the columns a store from an earlier version lacks."""
        with self._usable():
            db = self._connect()
            try:
                db.executescript(SCHEMA)  # IF NOT EXISTS throughout: opening an existing store changes nothing
                columns = {row[1] for row in db.execute("PRAGMA table_info(annotators)")}
                if "token_version" not in columns:  # a store made before token versions
                    db.execute("ALTER TABLE annotators ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0")
            finally:
                db.close()

    # -- connections ---------------------------------------------------------------------
    @contextmanager
    def _usable(self):
        """SQLite's errors that mean the store itself is unusable become StoreUnavailable."""
        try:
            yield
        except sqlite3.Error as error:
            if _store_error(error):
                raise _unavailable(self.path, error) from error
            raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed row survives a crash of the app
        return db

    @contextmanager
    def _write(self):
        with self._usable():
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
        with self._usable():
            db = self._connect()
            try:
                db.execute("BEGIN")  # one snapshot for every query of the block
                yield db
            finally:
                if db.in_transaction:
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
        """A new token for `name`; the old one stops working, open sessions included. A
        deactivated annotator stays deactivated (`reactivate` is its own command)."""
        secret, salt = new_secret(), os.urandom(16)
        with self._write() as db:
            row = db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise KeyError(f"no annotator named {name!r}")
            db.execute("UPDATE annotators SET salt = ?, token_hash = ?, token_version = token_version + 1 WHERE id = ?",
                       (salt, hash_secret(secret, salt), row[0]))
        return token_of(row[0], secret)

    def is_active(self, name: str) -> bool:
        with self._read() as db:
            row = db.execute("SELECT active FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no annotator named {name!r}")
        return bool(row[0])

    def deactivate(self, name: str) -> None:
        """`name`'s token stops working, in open sessions too; their answers stay."""
        self._set_active(name, False)

    def reactivate(self, name: str) -> None:
        """`name` may sign in again with their current token (sessions from before do not come back)."""
        self._set_active(name, True)

    def _set_active(self, name: str, active: bool) -> None:
        with self._write() as db:
            if db.execute("UPDATE annotators SET active = ?, token_version = token_version + 1 WHERE name = ?",
                          (int(active), name)).rowcount == 0:
                raise KeyError(f"no annotator named {name!r}")

    @staticmethod
    def _check_caller(db: sqlite3.Connection, who: Annotator) -> Annotator:
        """`who` as the store has them now; AccessDenied when deactivated or their token was
        rotated since they signed in. The owner (the file's holder) passes."""
        if who == OWNER:
            return who
        row = db.execute("SELECT name, role, active, token_version FROM annotators WHERE id = ?", (who.id,)).fetchone()
        if row is None or not row[2] or row[3] != who.version:
            raise AccessDenied(REVOKED)
        return Annotator(who.id, row[0], row[1], row[3])

    def verify(self, who: Annotator) -> Annotator:
        """The signed-in annotator re-checked (the app does it on every page run)."""
        with self._read() as db:
            return self._check_caller(db, who)

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
        annotators join, or after some are deactivated, tops items up. Returns {annotator name:
        items in their queue}."""
        with self._write() as db:
            people = db.execute("SELECT id, name FROM annotators WHERE role = 'annotator' AND active = 1 ORDER BY id").fetchall()
            if len(people) < per_item:
                raise ValueError(f"{per_item} annotators per item, but only {len(people)} active annotators: create more first")
            items = [r[0] for r in db.execute("SELECT id FROM items WHERE batch_id = ? ORDER BY id", (batch_id,))]
            if not items:
                raise KeyError(f"no batch {batch_id!r} in the store: load it first")
            holders: dict[str, set] = {i: set() for i in items}
            load = {a: 0 for a, _ in people}
            # a holder counts while active, or once they answered (a deactivated annotator's
            # answers stand); items held only by people since deactivated are topped up
            for annotator_id, item_id, active, answered in db.execute(
                    """SELECT a.annotator_id, a.item_id, p.active, EXISTS (
                           SELECT 1 FROM annotations n WHERE n.annotator_id = a.annotator_id
                           AND n.item_id = a.item_id AND n.undone_at IS NULL)
                       FROM assignments a JOIN items i ON i.id = a.item_id JOIN annotators p ON p.id = a.annotator_id
                       WHERE i.batch_id = ?""", (batch_id,)):
                if active or answered:
                    holders[item_id].add(annotator_id)
                if active:
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

    def backup(self, target: str | Path) -> Path:
        """A consistent copy of the store while the app runs (SQLite's online backup), 0600."""
        target = Path(target)
        if target.resolve() == self.path.resolve():
            raise ValueError("back up to another file than the store itself")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.touch(mode=0o600)
        source, copy = self._connect(), sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        os.chmod(target, 0o600)
        return target

    def restore(self, backup: str | Path) -> None:
        """Replace the store's content with a backup's, after checking it is a whole store."""
        backup = Path(backup)
        if not backup.is_file():
            raise FileNotFoundError(f"no backup at {backup}")
        source = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        try:
            try:
                check = source.execute("PRAGMA integrity_check").fetchone()[0]
                tables = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as error:
                raise ValueError(f"{backup} is not an annotation store ({error})") from error
            if check != "ok" or not {"annotators", "items", "assignments", "annotations"} <= tables:
                raise ValueError(f"{backup} is not a whole annotation store (integrity: {check}; tables: {sorted(tables)})")
            target = self._connect()
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        self._prepare()  # a backup from before token versions gains the column

    # -- annotators ----------------------------------------------------------------------------
    def sign_in(self, token: str, session: str | None = None) -> Annotator:
        """The annotator of a valid token. Failures are counted per annotator id and per browser
        `session`: after MAX_FAILED_SIGN_INS within SIGN_IN_WINDOW_S, sign-in is refused until
        the window has passed."""
        try:
            annotator_id, secret = parse_token(token)
        except AccessDenied:
            self._count_failure([f"session:{session}"] if session else [])
            raise
        keys = [f"id:{annotator_id}", *([f"session:{session}"] if session else [])]
        self._refuse_if_throttled(keys)
        try:
            return self._check_token(annotator_id, secret)
        except AccessDenied:
            self._count_failure(keys)
            raise

    def _refuse_if_throttled(self, keys: list[str]) -> None:
        since = time.time() - SIGN_IN_WINDOW_S
        with self._read() as db:
            failures = max(db.execute("SELECT COUNT(*) FROM sign_in_failures WHERE key = ? AND at > ?",
                                      (key, since)).fetchone()[0] for key in keys)
        if failures >= MAX_FAILED_SIGN_INS:
            raise AccessDenied(f"too many failed sign-ins: wait {SIGN_IN_WINDOW_S / 60:.0f} minutes, "
                               "or ask your admin for your token")

    def _count_failure(self, keys: list[str]) -> None:
        if not keys:
            return
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM sign_in_failures WHERE at < ?", (now - SIGN_IN_WINDOW_S,))
            db.executemany("INSERT INTO sign_in_failures (key, at) VALUES (?, ?)", [(key, now) for key in keys])

    def _check_token(self, annotator_id: str, secret: str) -> Annotator:
        with self._read() as db:
            row = db.execute("SELECT name, role, salt, token_hash, active, token_version FROM annotators WHERE id = ?",
                             (annotator_id,)).fetchone()
        # the hash is computed for an unknown id too: the answer takes as long either way
        salt, stored = (row[2], row[3]) if row is not None else (_UNKNOWN_SALT, _UNKNOWN_HASH)
        if not matches(secret, salt, stored) or row is None or not row[4]:
            raise AccessDenied("unknown or revoked token: ask the admin for yours")
        return Annotator(annotator_id, row[0], row[1], row[5])

    def next_item(self, annotator: Annotator) -> QueueItem | None:
        """The first item of the annotator's queue without a live answer (resume = this)."""
        with self._read() as db:
            self._check_caller(db, annotator)
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
            self._check_caller(db, annotator)
            total = db.execute("SELECT COUNT(*) FROM assignments WHERE annotator_id = ?", (annotator.id,)).fetchone()[0]
            done = db.execute("SELECT COUNT(*) FROM annotations WHERE annotator_id = ? AND undone_at IS NULL",
                              (annotator.id,)).fetchone()[0]
        return done, total

    def image(self, annotator: Annotator, key: str) -> bytes:
        """An image of one of the annotator's own items (admins: any)."""
        with self._read() as db:
            annotator = self._check_caller(db, annotator)
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
        check_answer_bounds(seconds, comment)
        with self._write() as db:
            self._check_caller(db, annotator)
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
            self._check_caller(db, annotator)
            row = db.execute("SELECT id, item_id FROM annotations WHERE annotator_id = ? AND undone_at IS NULL "
                             "ORDER BY id DESC LIMIT 1", (annotator.id,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE annotations SET undone_at = ? WHERE id = ?", (_now(), row[0]))
            return row[1]

    # -- admin reads -----------------------------------------------------------------------------
    def answers(self, admin: Annotator, include_undone: bool = False) -> list[dict]:
        """Every answer with its annotator's name and the item's key (task, model): admins only."""
        with self._read() as db:
            admin = self._check_caller(db, admin)
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
        with self._read() as db:
            admin = self._check_caller(db, admin)
            if not admin.is_admin:
                raise AccessDenied("the annotator list is for admins")
            rows = db.execute(
                """SELECT p.name, p.role, p.active,
                          (SELECT COUNT(*) FROM assignments a WHERE a.annotator_id = p.id),
                          (SELECT COUNT(*) FROM annotations n WHERE n.annotator_id = p.id AND n.undone_at IS NULL)
                   FROM annotators p ORDER BY p.name""").fetchall()
        return [{"annotator": r[0], "role": r[1], "active": bool(r[2]), "assigned": r[3], "answered": r[4]} for r in rows]
