"""The admin command: `python -m m6_pipeline.annotation.admin <command>`, run by the owner of
the store (settings from the Kedro configuration, as the app reads them).

    create-annotator NAME [--admin]   print a new personal token (shown once, stored hashed)
    rotate-token NAME                 print a new token for NAME; the old one stops working
    deactivate NAME                   NAME's token stops working; their answers stay
    load-batch [--per-item K]         load the evaluate pipeline's batch and assign its items,
                                      K annotators each (re-run after adding annotators)
    export --format jsonl|csv [--out PATH]   the answers (jsonl: what `evaluate` reads)
    status                            annotators, assigned and answered counts
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from m6_pipeline.annotation.results import export_csv, export_jsonl
from m6_pipeline.annotation.store import AnnotationStore, Annotator
from m6_pipeline.app_settings import load_app_settings

OWNER = Annotator("owner", "owner", "admin")  # whoever can open the file holds every right to it


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
    elif args.command == "deactivate":
        store.deactivate(args.name)
    elif args.command == "load-batch":
        items, key, images, seed = read_batch(args.batch_dir or settings.batch_dir)
        batch_id = store.load_batch(items, key, images, seed)
        queues = store.assign(batch_id, args.per_item, seed)
        print(f"batch {batch_id}: {len(items)} items, {args.per_item} annotators each; queues: {queues}")
    elif args.command == "export":
        text = (export_jsonl if args.format == "jsonl" else export_csv)(store, OWNER)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    elif args.command == "status":
        for row in store.annotator_table(OWNER):
            print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
