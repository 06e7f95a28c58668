"""Two annotators submitting at the same moment, from two processes, lose nothing: every answer
of both is in the store, each exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

WRITER = Path(__file__).parent / "concurrent_writer.py"


def test_two_writers_at_once_lose_nothing(store, batch):
    items, key, images = batch
    many = [dict(i, item_id=f"{i['item_id']}-{k}") for k in range(15) for i in items]  # ~285 items
    many_key = {i["item_id"]: key[i["item_id"].rsplit("-", 1)[0]] for i in many}
    tokens = [store.create_annotator(name) for name in ("wang", "zhao")]
    store.assign(store.load_batch(many, many_key, images, seed=0), 2, seed=0)  # both get every item
    ready = [store.path.parent / f"ready{k}" for k in range(2)]
    go = store.path.parent / "go"
    writers = [subprocess.Popen([sys.executable, str(WRITER), "--store", str(store.path), "--token", t,
                                 "--ready", str(r), "--go", str(go)], stdout=subprocess.PIPE, text=True)
               for t, r in zip(tokens, ready)]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(w.poll() is None for w in writers), "a writer did not start"
        time.sleep(0.01)
    go.touch()
    counts = []
    for w in writers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0
        counts.append(int(out.strip()))
    assert counts == [len(many), len(many)]
    answers = store.owner_answers()
    assert len(answers) == 2 * len(many)
    assert len({(a["annotator"], a["item_id"]) for a in answers}) == 2 * len(many)
    # the two writers really overlapped in time: each wrote while the other was writing
    stamps = {name: sorted(a["created_at"] for a in answers if a["annotator"] == name) for name in ("wang", "zhao")}
    assert stamps["wang"][0] < stamps["zhao"][-1] and stamps["zhao"][0] < stamps["wang"][-1]
