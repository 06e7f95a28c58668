"""The VQA splits: catalogue questions by default (product ids split by hash, scenes drawn
within each split, so no test product is ever seen in training), or FMIQA-format files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.extract import embed_images
from m6_pipeline.features.patches import PatchExtractor
from m6_pipeline.tasks.finetune.examples import TaskExample
from m6_pipeline.tasks.records import SPLITS, PairRecord, split_of
from m6_pipeline.tasks.vqa.config import VQAData
from m6_pipeline.tasks.vqa.fmiqa import load_fmiqa
from m6_pipeline.tasks.vqa.questions import scene_questions, single_product_questions
from m6_pipeline.tasks.vqa.scenes import draw_scenes, embed_scenes


def catalogue_questions(
    records: list[PairRecord], config: VQAData, pairs_dir, extractor: PatchExtractor, features: FeaturesConfig
) -> tuple[dict[str, list[TaskExample]], dict[str, np.ndarray]]:
    """({split: examples}, {scene id: patch features})."""
    labelled = [r for r in records if r.attributes is not None]
    if len(labelled) < 30:
        raise ValueError(
            f"VQA needs catalogue pairs whose text states colour, category, pattern and size; found "
            f"{len(labelled)}. Add the catalogue (corpus stage) or give data.fmiqa_train / fmiqa_test"
        )
    rng = np.random.default_rng(config.seed)
    by_split = {s: [r for r in labelled if split_of(r.id, config.val_fraction, config.test_fraction) == s]
                for s in SPLITS}
    examples: dict[str, list[TaskExample]] = {}
    scenes = []
    for split, products in by_split.items():
        if len(products) < 3:
            raise ValueError(f"VQA {split} split has {len(products)} products; need at least 3")
        drawn = draw_scenes(products, getattr(config.scenes, split), rng, split)
        scenes += drawn
        questions = [q for r in products for q in single_product_questions(r)]
        questions += [q for scene_id, items in drawn for q in scene_questions(scene_id, items, rng, config.canvas)]
        order = rng.permutation(len(questions))
        examples[split] = [questions[i] for i in order]
    examples["test"] = examples["test"][: config.max_test_questions]
    scene_features = embed_scenes(scenes, pairs_dir, extractor, features, config.canvas) if scenes else {}
    return examples, scene_features


def fmiqa_questions(
    config: VQAData, extractor: PatchExtractor, features: FeaturesConfig, seed: int
) -> tuple[dict[str, list[TaskExample]], dict[str, np.ndarray]]:
    """FMIQA files: images resolved against each file, embedded by the patch extractor; 5% of
    the training questions (by id hash) validate."""
    train = load_fmiqa(config.fmiqa_train)
    test = load_fmiqa(config.fmiqa_test)
    image_features: dict[str, np.ndarray] = {}
    for examples in (train, test):
        images = sorted({e.image_id for e in examples})
        files = [Path(image) for image in images]
        if missing := [str(f) for f in files if not f.exists()]:
            raise FileNotFoundError(f"{len(missing)} FMIQA images do not exist, e.g. {missing[:3]}")
        for start in range(0, len(files), 256):
            pngs = [f.read_bytes() for f in files[start : start + 256]]
            with features.threads():
                embedded = embed_images(pngs, images[start : start + 256], extractor, features)
            image_features.update(zip(images[start : start + 256], embedded))
    val = [e for e in train if split_of(e.id, 0.05, 0.0, salt=str(seed)) == "val"]
    train = [e for e in train if split_of(e.id, 0.05, 0.0, salt=str(seed)) == "train"]
    return {"train": train, "val": val, "test": test}, image_features
