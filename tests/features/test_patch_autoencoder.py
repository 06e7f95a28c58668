"""The patch autoencoder learns on a tiny set, deterministically, and beats its start."""

from __future__ import annotations

import torch

from m6_pipeline.features import FeaturesConfig, PatchAutoencoder, train_patch_autoencoder
from m6_pipeline.features.patch_autoencoder import load_image_patches, psnr


def tiny_config(pairs_dir, **autoencoder) -> FeaturesConfig:
    train = {
        "epochs": 4,
        "batch_size": 8,
        "lr": 3e-3,
        "width": 8,
        "holdout_fraction": 0.3,
        "seed": 3,
    }
    return FeaturesConfig(
        pairs_dir=pairs_dir,
        image_size=32,
        grid=2,
        d_feature=16,
        autoencoder={**train, **autoencoder},
    )


def test_loss_falls_and_held_out_psnr_rises(pairs_dir):
    cfg = tiny_config(pairs_dir)
    train, holdout = load_image_patches(cfg)
    assert train.dtype == torch.uint8 and train.shape[1:] == (3, 16, 16)
    assert len(train) % 4 == 0 and len(holdout) % 4 == 0 and len(holdout) > 0
    model, history = train_patch_autoencoder(train, holdout, cfg)
    losses = history["epoch_loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history["psnr_db"]["after"] > history["psnr_db"]["before"] + 3
    assert abs(psnr(model, holdout) - history["psnr_db"]["after"]) < 1e-9
    assert model.embed(train[:5].float() / 255).shape == (5, 16)


def test_training_is_deterministic_for_a_seed(pairs_dir):
    cfg = tiny_config(pairs_dir, epochs=1)
    train, holdout = load_image_patches(cfg)
    runs = [train_patch_autoencoder(train, holdout, cfg)[1]["epoch_loss"] for _ in range(2)]
    assert runs[0] == runs[1]


def test_shapes_for_other_patch_sizes():
    for patch, d in ((8, 4), (32, 64)):
        model = PatchAutoencoder(patch, d, width=4)
        x = torch.rand(3, 3, patch, patch)
        assert model.embed(x).shape == (3, d) and model(x).shape == x.shape
