"""finetune_vqa, finetune_caption, finetune_itm, qa, poem and evaluate chained through Kedro's
runner on a small rendered catalogue with a tiny 'pretrained' M6: VQA and captioning finetune both
variants (validation loss falls), ITM only the pretrained one (its `variants`, as in the laptop
run), and the report and the blind human batch are written."""

from __future__ import annotations

import io
import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from kedro_datasets.json import JSONDataset
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.text import TextDataset
from safetensors.torch import save_model

from m6_pipeline.annotation.store import AnnotationStore
from m6_pipeline.corpus.language_model import CharBigramLM
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.extract import extract_patch_features
from m6_pipeline.features.patch_autoencoder import PatchAutoencoder
from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.model.pretrained import export_pretrained, load_pretrained
from m6_pipeline.tokenization.wordpiece import TokenizerConfig, train_wordpiece
from pipelines.evaluate.pipeline import create_pipeline as evaluate
from pipelines.finetune_tasks.pipeline import create_pipeline as finetune_task
from pipelines.prompting.pipeline import create_pipeline as prompting
from tests.conftest import ROOT
from tests.pipelines.test_t2i_pipelines import merged, rendered_pairs
from tests.validation.results import passed_result

def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


ACCURACY = {"colour": 0.9, "category": 0.6, "pattern": 0.3}
T2I_METRICS = {"attribute_accuracy": ACCURACY, "n_prompts": 120, "variants": {"paper_top_k": {"attribute_accuracy": ACCURACY}},
               "real_images": ACCURACY, "vqgan_reconstructions": ACCURACY,
               "chance": {"colour": 1 / 11, "category": 0.1, "pattern": 0.2}}
GENERATED = {f"gen{i}": png for i, png in enumerate(
    _png(Image.new("RGB", (16, 16), (40 * i, 90, 200))) for i in range(4))}
T2I_PREDICTIONS = [{"id": f"t2i/{i}", "prompt": "一件红色的圆点连衣裙", "image_id": None, "reference": None,
                    "meta": {"stated": {"colour": "红色"}}, "outputs": {"pretrained": f"gen{i}"}} for i in range(4)]
TRAINING = {"steps": 12, "batch_size": 8, "warmup_steps": 2, "log_every": 4, "eval_every": 6,
            "checkpoint_every": 6, "precision": "fp32", "lr": 2e-3}


def test_downstream_tasks_then_evaluate_through_kedro(tmp_path):
    texts = rendered_pairs(tmp_path / "pairs", n=240)
    poem_chars = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少，。"
    tokenizer, _ = train_wordpiece([texts, [poem_chars] * 5, ["回答：正文：图中有几件商品？"]],
                                   TokenizerConfig(vocab_size=400, min_frequency=1))
    features = FeaturesConfig(pairs_dir=tmp_path / "pairs", out_dir=tmp_path / "features", image_size=16, grid=2,
                              d_feature=8, batch_size=64)
    torch.manual_seed(0)
    extractor = PatchAutoencoder(features.patch_size, features.d_feature, width=4)
    manifest = extract_patch_features(tmp_path / "pairs", extractor, features, tmp_path / "features")
    config = M6Config.of_size("tiny", vocab_size=tokenizer.get_vocab_size(), n_patches=4, d_patch_feature=8,
                              max_positions=160, dropout=0.0)
    save_model(M6Model(config), str(tmp_path / "w.safetensors"))
    card = export_pretrained(tmp_path / "w.safetensors", config, {"run": "tiny"}, tmp_path / "pretrained")

    # the pretraining text shards, from which the prompted tasks' n-gram baseline is trained
    shard_dir = tmp_path / "shards"
    (shard_dir / "text").mkdir(parents=True)
    encoded = tokenizer.encode_batch(texts + [poem_chars] * 5, add_special_tokens=False)
    pq.write_table(pa.table({"id": [str(i) for i in range(len(encoded))], "token_ids": [e.ids for e in encoded]}),
                   shard_dir / "text" / "train-00000.parquet")

    data = {"val_fraction": 0.15, "test_fraction": 0.2}
    params = {
        "finetune_vqa": merged("finetune_vqa", {"out_dir": str(tmp_path / "vqa"), "checkpoints": str(tmp_path / "ckpt_vqa"), "curves_dir": str(tmp_path / "curves_vqa"), "training": TRAINING,
                                                "data": {**data, "scenes": {"train": 40, "val": 8, "test": 12}}}),
        "finetune_caption": merged("finetune_caption", {"out_dir": str(tmp_path / "caption"), "checkpoints": str(tmp_path / "ckpt_caption"), "curves_dir": str(tmp_path / "curves_caption"), "training": TRAINING,
                                                        "decoding": {"max_new_tokens": 12}, "data": data}),
        "finetune_itm": merged("finetune_itm", {"out_dir": str(tmp_path / "itm"), "checkpoints": str(tmp_path / "ckpt_itm"), "curves_dir": str(tmp_path / "curves_itm"), "training": TRAINING,
                                                "data": {**data, "max_test_pairs": 40}, "variants": ["pretrained"]}),
        "qa": {"prompts_path": str(ROOT / "conf/base/prompts/qa_prompts.jsonl"), "max_new_tokens": 12},
        "poem": {"prompts_path": str(ROOT / "conf/base/prompts/poem_titles.txt"),
                 "format": {"line_chars": 5, "max_lines": 4}},
        "evaluate": {"annotations_dir": str(tmp_path / "annotations"), "store": str(tmp_path / "store.sqlite"),
                     "pairs_dir": str(tmp_path / "pairs")},
    }
    report = tmp_path / "report"
    catalog = DataCatalog(datasets={
        **{f"params:{k}": MemoryDataset(v) for k, v in params.items()},
        "params:features": MemoryDataset(features.model_dump(mode="json")),
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "patch_extractor": MemoryDataset(extractor, copy_mode="assign"),
        "patch_features_manifest": MemoryDataset(manifest),
        "clean_pairs_validation": MemoryDataset(passed_result("clean_pairs", tmp_path / "pairs")),
        "pretrain_base.model_card": MemoryDataset(card),
        "pretrain_base.token_shards": MemoryDataset({"shard_dir": str(shard_dir)}),
        "corpus_lm": MemoryDataset(CharBigramLM.train(texts), copy_mode="assign"),
        "t2i_metrics": MemoryDataset(T2I_METRICS),
        "t2i_predictions": MemoryDataset(T2I_PREDICTIONS),
        "t2i_images": MemoryDataset(pd.DataFrame({"image_key": list(GENERATED), "png": list(GENERATED.values())})),
        "evaluation_metrics": JSONDataset(filepath=str(report / "metrics.json")),
        "evaluation_report": TextDataset(filepath=str(report / "report.md")),
        "human_eval_items": JSONDataset(filepath=str(report / "items.json")),
        "human_eval_key": JSONDataset(filepath=str(report / "key.json")),
        "human_eval_results": JSONDataset(filepath=str(report / "human_results.json")),
        "human_eval_images": ParquetDataset(filepath=str(report / "images.parquet")),
        **{f"finetune_{t}.training_{v}": JSONDataset(filepath=str(tmp_path / f"{t}_{v}.json"))
           for t in ("vqa", "caption", "itm") for v in ("pretrained", "baseline")},
    })
    pipeline = sum((finetune_task(t) for t in ("vqa", "caption", "itm")), prompting("qa") + prompting("poem"))
    SequentialRunner().run(pipeline + evaluate(), catalog)

    finetuned = [(t, v) for t in ("vqa", "caption") for v in ("pretrained", "baseline")] + [("itm", "pretrained")]
    for task, variant in finetuned:
        training = catalog[f"finetune_{task}.training_{variant}"].load()
        curve = training["validation"]
        assert curve[-1]["val_loss"] < curve[0]["val_loss"], (task, variant, curve)
        assert training["precision"]["requested"] == training["precision"]["precision"] == "fp32"
        model, card_ = load_pretrained(tmp_path / task / variant)
        assert card_["task"] == task and card_["variant"] == variant
        # the same curve in dvclive's history, for `dvc plots show`
        logged = (tmp_path / f"curves_{task}" / variant / "plots/metrics/val/loss.tsv").read_text().splitlines()[1:]
        assert [float(line.split("\t")[1]) for line in logged] == pytest.approx([p["val_loss"] for p in curve])
        assert [int(line.split("\t")[0]) for line in logged] == [p["step"] for p in curve]
    skipped = catalog["finetune_itm.training_baseline"].load()
    assert skipped["not_run"] and not (tmp_path / "itm" / "baseline").exists()
    assert not (tmp_path / "curves_itm" / "baseline").exists()
    metrics = catalog["evaluation_metrics"].load()
    summary = metrics["summary"]
    assert summary["itm_accuracy"]["baseline"] is None and "itm_accuracy" in summary["not_compared"]
    assert set(metrics["tasks"]["itm"]["accuracy"]) == {"pretrained"} and "baseline" in metrics["tasks"]["itm"]["not_run"]
    assert set(summary["vqa_accuracy"]["pretrained"]) >= {"detection", "colour", "number", "overall"}
    assert 0 <= summary["itm_accuracy"]["pretrained"] <= 1
    assert summary["poem"]["pretrained"]["validity"] == summary["poem"]["baseline"]["validity"] == 1.0
    assert metrics["tasks"]["poem"]["validity_by_construction"] and "by construction" in (report / "report.md").read_text()
    # the prompted tasks' baseline is the n-gram LM on the shards (tests/tasks/test_ngram_baseline.py
    # shows it learning); the forum answers are far from this tiny catalogue text, so only finite here
    assert metrics["tasks"]["qa"]["baseline"]["n_train_tokens"] == sum(len(e.ids) + 1 for e in encoded)
    assert math.isfinite(summary["qa"]["baseline"]["human_answer_nll"])
    assert set(summary["pretrained_wins"]) >= {"vqa_overall", "caption_cider_d"}
    text = (report / "report.md").read_text(encoding="utf-8")
    assert "## Text-to-image (§4.1)" in text and "## VQA (Table 5)" in text and "their data, for reference only" in text and "No annotations yet" in text
    assert "Not run: baseline (itm: `variants` is ['pretrained'])." in text
    items = catalog["human_eval_items"].load()
    assert {i["kind"] for i in items} == {"vqa", "caption", "qa", "qa_turing", "poem", "t2i"}
    assert "pretrained" not in str(items) and "baseline" not in str(items)
    images = catalog["human_eval_images"].load()
    shown = {i["image_key"] for i in items if i["image_key"]} | {i["output"] for i in items if i["kind"] == "t2i"}
    assert shown == set(images["image_key"])
    scene_items = [i for i in items if (i["image_id"] or "").startswith("scene/")]
    assert scene_items  # number / relation questions show the scene redrawn from its products
    for png in images["png"]:
        Image.open(io.BytesIO(png)).verify()

    # annotations made in the app's store come back into the human results of the report
    key = catalog["human_eval_key"].load()
    store = AnnotationStore(tmp_path / "store.sqlite")
    tokens = [store.create_annotator(n) for n in ("li", "wang")]
    store.assign(store.load_batch(items, key, dict(zip(images["image_key"], images["png"])), seed=0), 2, seed=0)
    for token in tokens:
        who = store.sign_in(token)
        for _ in range(30):
            item = store.next_item(who)
            scores = {c: (a[0] if isinstance(a[0], str) else a[1]) for c, a in item.criteria.items()}
            store.submit(who, item.item_id, scores, 1.0)
    SequentialRunner().run(evaluate().only_nodes("read_annotations"), catalog)
    human = catalog["human_eval_results"].load()
    assert human["n_annotations"] == 60 and human["annotators"] == {"li": 30, "wang": 30}

    # the analysis notebook runs headless over these reports
    from m6_pipeline.evaluation.notebook import execute_notebook

    executed = execute_notebook(ROOT / "notebooks/evaluation.ipynb", report, tmp_path / "executed.ipynb")
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
