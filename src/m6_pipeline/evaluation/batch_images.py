"""The pixels a human-evaluation batch shows, written beside it: each item's source image
(a catalogue product or webpage pair from the clean pairs Parquet, or a VQA scene redrawn from
the products its question's meta records) and each generated image, as rows (image_key, png)."""

from __future__ import annotations

import pandas as pd

from m6_pipeline.evaluation.batches import image_key
from m6_pipeline.tasks.vqa.scenes import compose, load_pngs


def batch_images(items: list[dict], predictions: dict[str, list[dict]], pairs_dir, generated: pd.DataFrame | None) -> pd.DataFrame:
    """(image_key, png) for every image an item of `items` refers to.

    predictions: the tasks' prediction rows the batch was built from (scene rows carry
    meta.scene); generated: (image_key, png) of generated images (text-to-image)."""
    wanted = {item["image_id"] for item in items if item.get("image_key")}
    scenes = {row["image_id"]: row["meta"]["scene"] for rows in predictions.values() for row in rows
              if row.get("image_id") in wanted and "scene" in (row.get("meta") or {})}
    products = {p for scene in scenes.values() for p in scene["products"]}
    pngs = load_pngs(pairs_dir, (wanted - scenes.keys()) | products) if wanted else {}
    rows = [(image_key(i), pngs[i]) for i in sorted(wanted - scenes.keys())]
    rows += [(image_key(i), compose([pngs[p] for p in s["products"]], s["canvas"])) for i, s in sorted(scenes.items())]
    frame = pd.DataFrame(rows, columns=["image_key", "png"])
    outputs = {item["output"] for item in items if item["kind"] == "t2i"}
    if outputs:
        if generated is None:
            raise ValueError("the batch has text-to-image items but no generated images were given")
        shown = generated[generated["image_key"].isin(outputs)]
        if missing := outputs - set(shown["image_key"]):
            raise KeyError(f"{len(missing)} generated images of the batch are not in t2i_images, e.g. {sorted(missing)[:3]}")
        frame = pd.concat([frame, shown[["image_key", "png"]]], ignore_index=True)
    return frame.drop_duplicates("image_key").reset_index(drop=True)
