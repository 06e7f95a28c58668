"""Nodes of the `features` pipeline: thin wrappers from parameters and catalog entries to
m6_pipeline.features. Pairs are streamed from `features.pairs_dir` and the features written to
`features.out_dir`; a node reads the pairs only after `clean_pairs_validation` passes the gate
for those very files (m6_pipeline.validation.gate). `corpus_report` orders training after the
corpus accounts."""

from __future__ import annotations

import logging

from m6_pipeline.features import FeaturesConfig, load_resnet50, train_patch_autoencoder
from m6_pipeline.features import extract as extraction
from m6_pipeline.features.patch_autoencoder import load_image_patches
from m6_pipeline.features.report import feature_statistics, patches_figure
from m6_pipeline.validation.gate import require_passed

log = logging.getLogger(__name__)


def parse_config(features: dict) -> FeaturesConfig:
    """Validate `parameters_features.yml` into the typed config (errors name the bad key)."""
    return FeaturesConfig.model_validate(features)


def train_patch_extractor(cfg: FeaturesConfig, clean_pairs_validation: dict, corpus_report: dict):
    """The patch autoencoder trained on the corpus images, or ResNet-50 from local weights."""
    require_passed(clean_pairs_validation, "clean_pairs", cfg.pairs_dir)
    if cfg.extractor == "resnet50":
        model = load_resnet50(cfg.resnet50_weights)
        return model, {
            "extractor": "resnet50",
            "weights": str(cfg.resnet50_weights),
            "trained_here": False,
        }
    train, holdout = load_image_patches(cfg)
    with cfg.threads():
        model, history = train_patch_autoencoder(train, holdout, cfg)
    return model, {"extractor": "patch_autoencoder", "trained_here": True, **history}


def extract_patch_features(
    cfg: FeaturesConfig, clean_pairs_validation: dict, patch_extractor
) -> dict:
    """Write `patch_features-*.parquet` under `features.out_dir`; the returned manifest (saved
    beside them) tells later stages where they are and what shape they have."""
    require_passed(clean_pairs_validation, "clean_pairs", cfg.pairs_dir)
    with cfg.threads():
        manifest = extraction.extract_patch_features(
            cfg.pairs_dir, patch_extractor, cfg, cfg.out_dir
        )
    return {
        **manifest,
        "extractor": cfg.extractor,
        "image_size": cfg.image_size,
        "grid": cfg.grid,
        "patch_size": cfg.patch_size,
    }


def build_features_report(
    cfg: FeaturesConfig,
    clean_pairs_validation: dict,
    patch_extractor,
    extractor_training: dict,
    patch_features_manifest: dict,
):
    require_passed(clean_pairs_validation, "clean_pairs", cfg.pairs_dir)
    _, holdout = load_image_patches(cfg, max_train=0, max_holdout=6)
    report = {
        "config": cfg.model_dump(mode="json", exclude={"pairs_dir", "out_dir"}),
        "extractor": extractor_training,
        "extraction": patch_features_manifest,
        "features": feature_statistics(patch_features_manifest["out_dir"]),
    }
    return report, patches_figure(holdout, cfg.grid, patch_extractor)
