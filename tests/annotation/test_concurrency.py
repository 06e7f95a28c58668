"""Two annotators submitting at the same moment, from two processes, lose nothing: every answer
of both is in the store, each exactly once."""

from __future__ import annotations

import multiprocessing as mp

from m6_pipeline.annotation.store import AnnotationStore


def annotate_everything(path: str, token: str, start, results) -> None:
    store = AnnotationStore(path, busy_timeout_s=60)
    who = store.sign_in(token)
    start.wait()  # both writers begin together
    n = 0
    while (item := store.next_item(who)) is not None:
        scores = {c: (a[0] if isinstance(a[0], str) else a[1]) for c, a in item.criteria.items()}
        store.submit(who, item.item_id, scores, 0.1)
        n += 1
    results.put((who.name, n))


def test_two_writers_at_once_lose_nothing(store, batch):
    items, key, images = batch
    many = [dict(i, item_id=f"{i['item_id']}-{k}") for k in range(15) for i in items]  # ~285 items
    many_key = {i["item_id"]: key[i["item_id"].rsplit("-", 1)[0]] for i in many}
    tokens = [store.create_annotator(name) for name in ("wang", "zhao")]
    store.assign(store.load_batch(many, many_key, images, seed=0), 2, seed=0)  # both get every item
    context = mp.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    writers = [context.Process(target=annotate_everything, args=(str(store.path), t, start, results)) for t in tokens]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=300)
        assert w.exitcode == 0
    counts = dict(results.get(timeout=5) for _ in writers)
    assert counts == {"wang": len(many), "zhao": len(many)}
    admin = AnnotationStore(store.path)
    answers = admin._answers()
    assert len(answers) == 2 * len(many)
    assert len({(a["annotator"], a["item_id"]) for a in answers}) == 2 * len(many)
