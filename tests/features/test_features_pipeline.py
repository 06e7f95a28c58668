"""The features pipeline through Kedro's runner: extractor pickled, features, report, figure."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.dataset as pds
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.pickle import PickleDataset
from matplotlib.figure import Figure

from pipelines.features.pipeline import create_pipeline
from tests.validation.results import passed_result

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_trains_extracts_and_reports(pairs_dir, tmp_path):
    base = yaml.safe_load((ROOT / "conf/base/parameters_features.yml").read_text())["features"]
    local = yaml.safe_load((ROOT / "conf/local/parameters_features.yml").read_text())["features"]
    params = {**base, **local, "autoencoder": {**base["autoencoder"], **local["autoencoder"]}}
    params.update(
        pairs_dir=str(pairs_dir),
        out_dir=str(tmp_path / "patch_features"),
        image_size=32,
        grid=4,
        d_feature=16,
        rows_per_file=16,
    )
    params["autoencoder"].update(epochs=2, batch_size=16, width=4, holdout_fraction=0.3)
    catalog = DataCatalog(
        datasets={
            "params:features": MemoryDataset(params),
            "corpus_report": MemoryDataset({}),
            "clean_pairs_validation": MemoryDataset(passed_result("clean_pairs", pairs_dir)),
            "patch_extractor": PickleDataset(filepath=str(tmp_path / "models" / "extractor.pkl")),
            **{
                name: MemoryDataset()
                for name in (
                    "patch_extractor_training",
                    "patch_features_manifest",
                    "features_report",
                    "features_figure",
                )
            },
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    report = catalog["features_report"].load()
    json.dumps(report)
    assert (
        report["extraction"]["rows"] == 24 == pds.dataset(tmp_path / "patch_features").count_rows()
    )
    assert report["extractor"]["extractor"] == "patch_autoencoder"
    assert report["extractor"]["psnr_db"]["after"] > report["extractor"]["psnr_db"]["before"]
    assert report["features"]["sampled_pairs"] == 24
    assert isinstance(catalog["features_figure"].load(), Figure)
    assert catalog["patch_extractor"].load().d_feature == 16
