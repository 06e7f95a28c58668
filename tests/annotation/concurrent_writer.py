"""One writer of the concurrency test (tests/annotation/test_concurrency.py): signs in, waits for
the agreed start time, then answers its whole queue as fast as it can; prints how many."""

import argparse
import time

from m6_pipeline.annotation.store import AnnotationStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--start-at", type=float, required=True, help="time.time() at which to begin")
    args = parser.parse_args()
    store = AnnotationStore(args.store, busy_timeout_s=60)
    who = store.sign_in(args.token)
    time.sleep(max(0.0, args.start_at - time.time()))  # both writers begin together
    n = 0
    while (item := store.next_item(who)) is not None:
        scores = {c: (a[0] if isinstance(a[0], str) else a[1]) for c, a in item.criteria.items()}
        store.submit(who, item.item_id, scores, 0.1)
        n += 1
    print(n)


if __name__ == "__main__":
    main()
