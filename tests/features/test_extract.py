"""Extraction keeps every pair, writes the documented columns, and its bytes decode back to
exactly the float16 features the extractor gave."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest
import torch

from m6_pipeline.features import (
    FeaturesConfig,
    PatchAutoencoder,
    decode_patch_features,
    extract_patch_features,
)
from m6_pipeline.features.extract import SCHEMA, embed_images
from m6_pipeline.features.patches import ImageDecodeError, image_patches


@pytest.fixture(scope="module")
def setup():
    cfg = FeaturesConfig(image_size=32, grid=4, d_feature=12, batch_size=5, rows_per_file=10)
    torch.manual_seed(0)
    return cfg, PatchAutoencoder(cfg.patch_size, cfg.d_feature, width=4).eval()


def test_every_pair_comes_out_and_decodes_back(setup, pairs_dir, tmp_path):
    cfg, model = setup
    out = tmp_path / "patch_features"
    summary = extract_patch_features(pairs_dir, model, cfg, out)
    assert summary["rows"] == 24 and summary["files"] == [
        "patch_features-00000.parquet",
        "patch_features-00001.parquet",
        "patch_features-00002.parquet",
    ]
    assert [pq.ParquetFile(out / f).metadata.num_rows for f in summary["files"]] == [10, 10, 4]
    table = pds.dataset(out).to_table()
    assert table.schema.equals(SCHEMA)
    pairs = pds.dataset(pairs_dir).to_table()
    assert table["id"].to_pylist() == pairs["id"].to_pylist()
    assert table["text"].to_pylist() == pairs["text"].to_pylist()
    assert set(table["n_patches"].to_pylist()) == {16} and set(table["d_feature"].to_pylist()) == {
        12
    }
    expected = embed_images(pairs["image"].to_pylist(), pairs["id"].to_pylist(), model, cfg)
    for i, row in enumerate(table.select(["patch_features", "n_patches", "d_feature"]).to_pylist()):
        decoded = decode_patch_features(row["patch_features"], row["n_patches"], row["d_feature"])
        assert decoded.dtype == np.float16 and decoded.shape == (16, 12)
        np.testing.assert_array_equal(decoded, expected[i])


def test_rows_follow_the_patch_order(setup, pairs_dir, tmp_path):
    """Row k of a pair's features is the embedding of patch k alone (row-major)."""
    cfg, model = setup
    pairs = pq.read_table(min(pairs_dir.glob("*.parquet"))).slice(0, 2)
    features = embed_images(pairs["image"].to_pylist(), pairs["id"].to_pylist(), model, cfg)
    patches = image_patches(pairs["image"].to_pylist(), pairs["id"].to_pylist(), 32, 4)
    for k in (0, 5, 15):
        alone = model.embed(patches[1, k : k + 1]).numpy().astype(np.float16)
        np.testing.assert_allclose(features[1, k], alone[0], rtol=1e-2, atol=1e-3)


def test_a_broken_image_names_its_pair_and_keeps_the_old_output(setup, make_pairs, tmp_path):
    cfg, model = setup
    good, bad = tmp_path / "good", tmp_path / "bad"
    make_pairs(good, n=6, files=1)
    make_pairs(bad, n=6, files=1, bad_id="catalogue/000004")
    out = tmp_path / "out"
    extract_patch_features(good, model, cfg, out)
    with pytest.raises(ImageDecodeError, match="catalogue/000004"):
        extract_patch_features(bad, model, cfg, out)
    assert pds.dataset(out).count_rows() == 6


def test_decode_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="not 4x4 float16"):
        decode_patch_features(np.zeros(10, np.float16).tobytes(), 4, 4)
    assert pa.binary() == SCHEMA.field("patch_features").type
