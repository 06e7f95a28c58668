"""The admin command end to end on a batch directory as the evaluate pipeline writes it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from m6_pipeline.annotation.admin import main
from m6_pipeline.annotation.store import AnnotationStore


def write_batch(directory, batch) -> None:
    items, key, images = batch
    directory.mkdir()
    (directory / "items.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    (directory / "key.json").write_text(json.dumps(key))
    (directory / "manifest.json").write_text(json.dumps({"seed": 3, "n_items": len(items)}))
    pd.DataFrame({"image_key": list(images), "png": list(images.values())}).to_parquet(directory / "images.parquet")


def test_create_load_annotate_export(tmp_path, batch, capsys):
    items, _, _ = batch
    write_batch(tmp_path / "batch", batch)
    store_path = tmp_path / "store.sqlite"
    base = ["--store", str(store_path)]
    tokens = []
    for name in ("li", "wang"):
        assert main([*base, "create-annotator", name]) == 0
        tokens.append(capsys.readouterr().out.strip())
    main([*base, "create-annotator", "boss", "--admin"])
    capsys.readouterr()
    assert main([*base, "load-batch", "--batch-dir", str(tmp_path / "batch"), "--per-item", "2"]) == 0
    assert f"{len(items)} items" in capsys.readouterr().out
    store = AnnotationStore(store_path)
    who = store.sign_in(tokens[0])
    item = store.next_item(who)
    for shown in (item.image_key, item.output if item.kind == "t2i" else None):
        if shown:
            assert store.image(who, shown)[:4] == b"\x89PNG"
    scores = {c: (a[0] if isinstance(a[0], str) else a[1]) for c, a in item.criteria.items()}
    store.submit(who, item.item_id, scores, 2.0)
    main([*base, "export", "--format", "jsonl", "--out", str(tmp_path / "out.jsonl")])
    assert [json.loads(line)["scores"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [scores]
    main([*base, "export", "--format", "csv"])
    assert "li" in capsys.readouterr().out
    main([*base, "rotate-token", "li"])
    with pytest.raises(PermissionError):
        store.sign_in(tokens[0])


def test_load_batch_says_which_pipeline_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="--pipeline=evaluate"):
        main(["--store", str(tmp_path / "s.sqlite"), "load-batch", "--batch-dir", str(tmp_path / "nothing")])
