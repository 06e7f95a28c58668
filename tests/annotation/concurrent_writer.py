"""One writer of the concurrency test (tests/annotation/test_concurrency.py): signs in, says it
is ready, waits for the go file, then answers its whole queue as fast as it can; prints how many."""

import argparse
import time
from pathlib import Path

from m6_pipeline.annotation.store import AnnotationStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--ready", required=True, help="file this writer creates once signed in")
    parser.add_argument("--go", required=True, help="file whose appearance starts the writing")
    args = parser.parse_args()
    store = AnnotationStore(args.store, busy_timeout_s=60)
    who = store.sign_in(args.token)
    Path(args.ready).touch()
    while not Path(args.go).exists():  # both writers begin together
        time.sleep(0.005)
    n = 0
    while (item := store.next_item(who)) is not None:
        scores = {c: (a[0] if isinstance(a[0], str) else a[1]) for c, a in item.criteria.items()}
        store.submit(who, item.item_id, scores, 0.1)
        n += 1
    print(n)


if __name__ == "__main__":
    main()
