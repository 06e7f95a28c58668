"""The admin command: `python -m m6_pipeline.annotation.admin <command>`, run by the owner of
the store (settings from the Kedro configuration, as the app reads them).

    create-annotator NAME [--admin]   print a new personal token (shown once, stored hashed)
    rotate-token NAME                 print a new token for NAME; the old one stops working
                                      (open sessions too); a deactivated NAME stays so
    deactivate NAME                   NAME's token stops working, open sessions too; answers stay
    reactivate NAME                   NAME may sign in again with their current token
    load-batch [--per-item K]         load the evaluate pipeline's batch and assign its items,
                                      K annotators each (re-run after adding annotators)
    export --format jsonl|csv [--out PATH]   the answers (jsonl: what `evaluate` reads)
    status                            annotators, assigned and answered counts
    backup PATH / restore PATH        a consistent copy of the store while the app runs; put one back

Every file written here (exports, backups) is readable by its owner only (0600).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pyarrow.parquet as pq

from m6_pipeline.annotation.results import export_csv, export_jsonl
from m6_pipeline.annotation.store import OWNER, AnnotationStore
from m6_pipeline.app_settings import load_app_settings


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, created readable by its owner only (answers and names are personal data)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its mode through os.open


def read_batch(batch_dir: Path) -> tuple[list[dict], dict, dict[str, bytes], int]:
    """(items, key, images, seed) of the evaluate pipeline's batch in `batch_dir`."""
    needed = [batch_dir / n for n in ("items.json", "key.json", "manifest.json")]
    if missing := [str(p) for p in needed if not p.exists()]:
        raise FileNotFoundError(f"no batch at {batch_dir} ({', '.join(missing)} missing): "
                                "run `kedro run --pipeline=evaluate --env=local` first")
    items, key, manifest = (json.loads(p.read_text(encoding="utf-8")) for p in needed)
    images_path = batch_dir / "images.parquet"
    images = {}
    if images_path.exists():
        table = pq.read_table(images_path, columns=["image_key", "png"])
        images = dict(zip(table.column("image_key").to_pylist(), table.column("png").to_pylist()))
    return items, key, images, int(manifest.get("seed", 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m m6_pipeline.annotation.admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf-source", default="conf")
    parser.add_argument("--env", default="local")
    parser.add_argument("--store", type=Path, help="the store file (default: the app settings' store)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-annotator")
    create.add_argument("name")
    create.add_argument("--admin", action="store_true", help="an admin: reads results, does not annotate")
    commands.add_parser("rotate-token").add_argument("name")
    commands.add_parser("deactivate").add_argument("name")
    commands.add_parser("reactivate").add_argument("name")
    commands.add_parser("backup").add_argument("path", type=Path)
    commands.add_parser("restore").add_argument("path", type=Path)
    load = commands.add_parser("load-batch")
    load.add_argument("--batch-dir", type=Path)
    load.add_argument("--per-item", type=int, default=2, help="annotators per item (2+ gives agreement)")
    export = commands.add_parser("export")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--out", type=Path, help="default: stdout")
    commands.add_parser("status")
    args = parser.parse_args(argv)

    settings = load_app_settings(args.conf_source, args.env)
    store = AnnotationStore(args.store or settings.store)
    if args.command == "create-annotator":
        print(store.create_annotator(args.name, "admin" if args.admin else "annotator"))
    elif args.command == "rotate-token":
        print(store.rotate_token(args.name))
        if not store.is_active(args.name):
            print(f"note: {args.name} is deactivated; `reactivate {args.name}` lets the new token sign in",
                  file=sys.stderr)
    elif args.command == "deactivate":
        store.deactivate(args.name)
    elif args.command == "reactivate":
        store.reactivate(args.name)
    elif args.command == "backup":
        print(store.backup(args.path))
    elif args.command == "restore":
        store.restore(args.path)
    elif args.command == "load-batch":
        items, key, images, seed = read_batch(args.batch_dir or settings.batch_dir)
        batch_id = store.load_batch(items, key, images, seed)
        queues = store.assign(batch_id, args.per_item, seed)
        print(f"batch {batch_id}: {len(items)} items, {args.per_item} annotators each; queues: {queues}")
    elif args.command == "export":
        text = (export_jsonl if args.format == "jsonl" else export_csv)(store, OWNER)
        if args.out:
            write_private(args.out, text)
        else:
            sys.stdout.write(text)
    elif args.command == "status":
        for row in store.annotator_table(OWNER):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
