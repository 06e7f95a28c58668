"""The `vqgan` and `finetune_t2i` pipelines chained through Kedro's runner on a small rendered
catalogue: codes for every pair, a finetuned model that loads and generates, the report files,
and predictions rows whose images are in the images Parquet at the VQGAN's resolution."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import ParquetDataset
from PIL import Image
from safetensors.torch import save_model

from m6_pipeline.data.catalogue import CATEGORIES, COLOURS, PATTERNS, SIZES, describe_item, render_item
from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.pretrained import export_pretrained, load_pretrained
from m6_pipeline.tokenization.wordpiece import TokenizerConfig, train_wordpiece
from pipelines.finetune_t2i.pipeline import create_pipeline as finetune_t2i
from pipelines.vqgan.pipeline import create_pipeline as vqgan
from tests.conftest import ROOT
from tests.validation.results import passed_result


def rendered_pairs(directory, n: int = 96):
    rng = random.Random(0)
    rows = {"id": [], "source": [], "text": [], "image": [], "width": [], "height": []}
    for i in range(n):
        attributes = {"category": rng.choice(CATEGORIES[:3]), "colour": rng.choice(list(COLOURS)[:3]),
                      "pattern": rng.choice(PATTERNS), "size": rng.choice(list(SIZES))}
        buffer = io.BytesIO()
        render_item(attributes, rng, size=32).save(buffer, format="PNG")
        rows["id"].append(f"catalogue/{i:06d}")
        rows["source"].append("catalogue")
        rows["text"].append(describe_item(attributes, rng)[1])
        rows["image"].append(buffer.getvalue())
        rows["width"].append(32)
        rows["height"].append(32)
    directory.mkdir(parents=True)
    pq.write_table(pa.table(rows), directory / "pairs-00000.parquet")
    return rows["text"]


def merged(name: str, overrides: dict) -> dict:
    params = yaml.safe_load((ROOT / f"conf/base/parameters_{name}.yml").read_text())[name]

    def merge(a, b):
        return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
                        for k, v in b.items()}}

    return merge(params, overrides)


def _tsv(path) -> list[list[str]]:
    """A dvclive metric history without its header: [step, value] rows."""
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def test_vqgan_then_finetune_t2i_through_kedro(tmp_path):
    texts = rendered_pairs(tmp_path / "pairs")
    tokenizer, _ = train_wordpiece([texts], TokenizerConfig(vocab_size=300, min_frequency=1))
    config = M6Config.of_size("tiny", vocab_size=tokenizer.get_vocab_size(), n_patches=4, d_patch_feature=8,
                              max_positions=64, dropout=0.0)
    torch.manual_seed(0)
    save_model(M6Model(config), str(tmp_path / "w.safetensors"))
    pretrained_card = export_pretrained(tmp_path / "w.safetensors", config, {"run": "tiny"}, tmp_path / "pretrained")

    vqgan_params = merged("vqgan", {
        "pairs_dir": str(tmp_path / "pairs"), "codes_dir": str(tmp_path / "codes"),
        "checkpoint_dir": str(tmp_path / "vq_ckpt"), "model_dir": str(tmp_path / "vq_model"),
        "curves_dir": str(tmp_path / "curves/vqgan"),
        "model": {"resolution": 16, "channels": 8, "channel_mult": [1, 2, 2], "n_res_blocks": 1,
                  "d_latent": 8, "codebook_size": 32, "codebook_dim": 4},
        "loss": {"perceptual_weights": None, "disc_start": 10, "disc_layers": 1, "disc_channels": 8},
        "training": {"steps": 20, "batch_size": 8, "lr": 1e-3, "log_every": 10, "checkpoint_every": 10,
                     "max_holdout_images": 12, "holdout_fraction": 0.1},
    })
    t2i_params = merged("finetune_t2i", {
        "out_dir": str(tmp_path / "t2i_model"), "checkpoint_dir": str(tmp_path / "t2i_ckpt"),
        "curves_dir": str(tmp_path / "curves/t2i"),
        "data": {"max_prompt_tokens": 16, "held_out_fraction": 0.15},
        "training": {"steps": 20, "batch_size": 8, "warmup_steps": 2, "log_every": 10, "eval_every": 10,
                     "checkpoint_every": 10, "precision": "fp32"},
        "sampling": {"top_k": 8, "samples_per_prompt": 2},
        "variants": {"guided": {"top_k": 8, "samples_per_prompt": 2, "guidance_scale": 2.0},
                     "guided_reranked": {"top_k": 8, "samples_per_prompt": 2, "guidance_scale": 2.0, "rerank": True}},
        "evaluation": {"n_prompts": 8, "classifier_epochs": 1, "classifier_width": 8, "n_human_eval": 5},
    })
    reports = tmp_path / "reports"
    catalog = DataCatalog(datasets={
        "params:vqgan": MemoryDataset(vqgan_params),
        "params:finetune_t2i": MemoryDataset(t2i_params),
        "corpus_report": MemoryDataset({}),
        "clean_pairs_validation": MemoryDataset(passed_result("clean_pairs", tmp_path / "pairs")),
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "pretrain_base.model_card": MemoryDataset(pretrained_card),
        "vqgan_card": JSONDataset(filepath=str(tmp_path / "vqgan_card.json")),
        "image_codes_manifest": JSONDataset(filepath=str(tmp_path / "codes" / "_manifest.json")),
        "t2i_card": JSONDataset(filepath=str(tmp_path / "t2i_card.json")),
        "t2i_metrics": JSONDataset(filepath=str(reports / "metrics.json")),
        "t2i_grid": MatplotlibDataset(filepath=str(reports / "prompts.png")),
        "t2i_predictions": JSONDataset(filepath=str(tmp_path / "t2i_out" / "predictions.json")),
        "t2i_images": ParquetDataset(filepath=str(tmp_path / "t2i_out" / "images.parquet")),
        "vqgan_metrics": JSONDataset(filepath=str(reports / "vqgan_metrics.json")),
        "vqgan_reconstructions": MatplotlibDataset(filepath=str(reports / "reconstructions.png")),
    })
    SequentialRunner().run(vqgan() + finetune_t2i(), catalog)

    manifest = catalog["image_codes_manifest"].load()
    assert manifest["n_images"] == 96 and manifest["n_failed"] == 0 and manifest["n_codes"] == 16
    codes = pq.read_table(tmp_path / "codes" / manifest["files"][0]).column("codes").to_pylist()
    assert len(codes) == 96 and all(len(c) == 16 and max(c) < 32 for c in codes)
    vq_metrics = catalog["vqgan_metrics"].load()
    assert vq_metrics["psnr_db"] > 5 and 0 < vq_metrics["corpus_codebook_usage"] <= 1
    assert (reports / "reconstructions.png").stat().st_size > 1000
    # the VQGAN and text-to-image loops log their curves with dvclive (steps 10 and 20)
    assert [row[0] for row in _tsv(tmp_path / "curves/vqgan/plots/metrics/train/reconstruction_l1.tsv")] == ["10", "20"]
    assert [row[0] for row in _tsv(tmp_path / "curves/t2i/plots/metrics/val/loss.tsv")] == ["0", "10", "20"]
    assert "train" in json.loads((tmp_path / "curves/t2i/metrics.json").read_text())
    assert vq_metrics["precision"]["requested"] == vq_metrics["precision"]["precision"] == "fp32"

    metrics = catalog["t2i_metrics"].load()
    assert set(metrics["attribute_accuracy"]) == {"colour", "category", "pattern"}
    assert set(metrics["variants"]) == {"paper_top_k", "guided", "guided_reranked"}
    assert metrics["variants"]["guided_reranked"]["diversity"]["mean_pairwise_pixel_l1"] is None  # one kept
    assert metrics["variants"]["paper_top_k"]["diversity"]["mean_pairwise_pixel_l1"] >= 0
    assert metrics["val_code_loss"] < metrics["uniform_code_loss"] + 0.5
    assert metrics["precision"]["requested"] == metrics["precision"]["precision"] == "fp32"
    assert (reports / "prompts.png").stat().st_size > 1000
    model, card = load_pretrained(catalog["t2i_card"].load()["model_dir"])
    assert card["task"] == "text_to_image" and model.config.n_image_codes == 32

    rows, images = catalog["t2i_predictions"].load(), catalog["t2i_images"].load()
    assert len(rows) == min(5, metrics["n_prompts"]) > 0
    pngs = dict(zip(images["image_key"], images["png"]))
    for row in rows:
        assert set(row) == {"id", "prompt", "image_id", "reference", "meta", "outputs"}
        assert row["image_id"] == row["id"] and row["id"].startswith("catalogue/") and row["reference"] is None
        assert set(row["meta"]["stated"]) == {"colour", "category", "pattern"}
        assert row["prompt"] and texts[int(row["id"][-6:])].startswith(row["prompt"])  # as far as read
        pixels = np.asarray(Image.open(io.BytesIO(pngs[row["outputs"]["pretrained"]])))
        assert pixels.shape == (16, 16, 3) and pixels.dtype == np.uint8
