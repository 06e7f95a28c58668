"""The namespaced pretraining pipeline through Kedro's runner: token shards from a small clean
corpus and its patch features, the plan, a short Ray Train + ColossalAI run, the reports."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro_datasets.json import JSONDataset
from kedro.runner import SequentialRunner

from m6_pipeline.machine import describe_machine
from m6_pipeline.model.config import M6Config
from m6_pipeline.precision_choice import ProbeShape, cache_key
from m6_pipeline.tokenization.wordpiece import TokenizerConfig, train_wordpiece
from pipelines.pretrain.pipeline import create_pipeline
from tests.validation.results import passed_result
from tests.conftest import ROOT

PHRASES = ["今天的天气很好", "我们一起去公园散步", "这件红色的连衣裙很漂亮", "蓝色条纹衬衫适合夏天",
           "人民日报报道了经济发展", "这本书的内容非常精彩", "商品质量不错物流很快"]


def small_corpus(tmp_path, rng):
    texts = ["，".join(rng.choice(PHRASES, size=4)) + "。" for _ in range(400)]
    text_dir = tmp_path / "text"
    text_dir.mkdir()
    pq.write_table(pa.table({"id": [f"t{i}" for i in range(len(texts))], "text": texts}),
                   text_dir / "text-00000.parquet")
    features_dir = tmp_path / "features"
    features_dir.mkdir()
    pair_texts = [f"{c}的{k}" for c in ("红色", "蓝色", "绿色") for k in ("连衣裙", "衬衫", "帽子")] * 20
    features = [rng.normal(size=(4, 8)).astype("<f2").tobytes() for _ in pair_texts]
    pq.write_table(pa.table({
        "id": [f"p{i}" for i in range(len(pair_texts))], "source": ["catalogue"] * len(pair_texts),
        "text": pair_texts, "n_patches": pa.array([4] * len(pair_texts), pa.int32()),
        "d_feature": pa.array([8] * len(pair_texts), pa.int32()), "patch_features": features,
    }), features_dir / "patch_features-00000.parquet")
    tokenizer, _ = train_wordpiece([texts, pair_texts], TokenizerConfig(vocab_size=200, min_frequency=1))
    manifest = {"out_dir": str(features_dir), "n_patches": 4, "d_feature": 8}
    return text_dir, tokenizer, manifest


def params_for(tmp_path, text_dir) -> dict:
    base = yaml.safe_load((ROOT / "conf/base/parameters_pretrain.yml").read_text())["pretrain_base"]["pretrain"]
    base.update(
        model={"size": "tiny", "overrides": {"max_positions": 128, "dropout": 0.0}},
        shards={"max_text_tokens": 48, "min_text_tokens": 4, "val_fraction": 0.1, "row_group_rows": 64},
        mix={"max_text_tokens": 48},
        optimizer={"lr": 3e-3, "warmup_steps": 2},
        plugin={"name": "torch_ddp"},
        workers={"num_workers": 2, "use_gpu": False, "storage_path": str(tmp_path / "ray_train")},
        steps=12, batch_size=4, eval_every=6, checkpoint_every=6, val_examples_per_task=16, log_every=4,
        text_dir=str(text_dir), shard_dir=str(tmp_path / "shards"), report_dir=str(tmp_path / "report"),
        model_dir=str(tmp_path / "model"), samples_per_task=2,
    )
    base["plan"]["run"] = {
        "cluster": {"name": "test", "n_gpus": 0, "n_workers": 2, "host_memory_gib": 8},
        "settings": {"plugin": "torch_ddp", "micro_batch_size": 4, "seq_len": 128, "mfu": 0.1},
    }
    return base


def _loaded(output):
    return output.load() if hasattr(output, "load") else output


def slow_bf16_probe_cache(tmp_path, params: dict, tokenizer) -> str:
    """A probe cache that says this machine runs bf16 at a tenth of fp32's speed, for the shape
    and threads of `params` (the planner and every worker look it up instead of measuring)."""
    config = M6Config.of_size("tiny", **params["model"]["overrides"], vocab_size=tokenizer.get_vocab_size(),
                              n_patches=4, d_patch_feature=8)
    shape = ProbeShape(tokens=params["batch_size"] * config.max_positions, d_in=config.d_model,
                       d_out=config.ffn_width)
    key = cache_key(describe_machine(), shape)
    path = tmp_path / "precision_probe.json"
    path.write_text(json.dumps({key: {"fp32_gflops": 50.0, "bf16_gflops": 5.0}}))
    return str(path)


def test_pretrain_pipeline_runs_namespaced_through_kedro(tmp_path, ray_local):
    text_dir, tokenizer, manifest = small_corpus(tmp_path, np.random.default_rng(0))
    pipeline = create_pipeline("pretrain_base")
    assert {n.name for n in pipeline.nodes} >= {"pretrain_base.pretrain", "pretrain_base.plan_pretraining"}
    params = params_for(tmp_path, text_dir)
    params.update(precision="auto", precision_probe_cache=slow_bf16_probe_cache(tmp_path, params, tokenizer))
    catalog = DataCatalog(datasets={
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "patch_features_manifest": MemoryDataset(manifest),
        "clean_text_validation": MemoryDataset(passed_result("clean_text", text_dir)),
        "params:pretrain_base.pretrain": MemoryDataset(params),
        "pretrain_base.plan": JSONDataset(filepath=str(tmp_path / "plan.json")),
        "pretrain_base.model_card": JSONDataset(filepath=str(tmp_path / "model_card.json")),
    })
    outputs = SequentialRunner().run(pipeline, catalog)
    plan = catalog["pretrain_base.plan"].load()
    assert abs(plan["n_params_full"] / 327e6 - 1) < 0.03  # the paper-scale model, not this one
    assert plan["this_run"]["fits"]
    # auto read the probe (bf16 at 0.1x fp32): fp32 in the plan, at this machine's measured ceiling
    assert plan["precision"]["precision"] == "fp32" and plan["precision"]["requested"] == "auto"
    assert plan["this_run"]["cluster"]["host_peak_gflops_fp32"] == pytest.approx(50.0 * 2)
    summary = _loaded(outputs["pretrain_base.train_summary"])
    # ... and in every worker, recorded in the stage's summary with the reason
    assert summary["precision"]["precision"] == "fp32" and summary["precision"]["requested"] == "auto"
    assert "0.10x the fp32 speed" in summary["precision"]["reason"]
    assert set(summary["tasks"]) == {"text_denoising", "language_modelling", "image_to_text",
                                     "multimodality_to_text"}
    for task, row in summary["tasks"].items():
        assert row["val_loss_final"] < row["val_loss_initial"], task
    assert summary["baselines"]["uniform_ln_vocab"] == pytest.approx(np.log(tokenizer.get_vocab_size()))
    samples = _loaded(outputs["pretrain_base.samples"])
    assert all(len(rows) == 2 and all("generated" in r for r in rows) for rows in samples.values())
    card = catalog["pretrain_base.model_card"].load()
    assert (tmp_path / "model" / "model.safetensors").exists() and card["steps"] == 12
    assert (tmp_path / "report" / "dvclive" / "metrics.json").exists()


def test_pretrain_100b_plans_the_paper_moe_and_trains_experts_on_two_ranks(tmp_path, ray_local):
    text_dir, tokenizer, manifest = small_corpus(tmp_path, np.random.default_rng(1))
    params = params_for(tmp_path, text_dir)
    paper = yaml.safe_load((ROOT / "conf/base/parameters_pretrain.yml").read_text())["pretrain_100b"]["pretrain"]
    params.update(name="pretrain_100b", paper_scale=paper["paper_scale"],
                  model={"size": "tiny", "overrides": {"max_positions": 128, "dropout": 0.0,
                                                       "moe": {"n_experts": 4, "every": 2}}},
                  plugin={"name": "torch_ddp", "ep_size": 2})
    params["plan"] = {**params["plan"], "paper": paper["plan"]["paper"]}
    params["plan"]["run"]["settings"]["ep_size"] = 2
    pipeline = create_pipeline("pretrain_100b")
    catalog = DataCatalog(datasets={
        "tokenizer": MemoryDataset(tokenizer, copy_mode="assign"),
        "patch_features_manifest": MemoryDataset(manifest),
        "clean_text_validation": MemoryDataset(passed_result("clean_text", text_dir)),
        "params:pretrain_100b.pretrain": MemoryDataset(params),
        "pretrain_100b.plan": JSONDataset(filepath=str(tmp_path / "plan.json")),
    })
    outputs = SequentialRunner().run(pipeline, catalog)
    plan = catalog["pretrain_100b.plan"].load()
    assert abs(plan["n_params_full"] / 100e9 - 1) < 0.05  # M6-100B, counted on the meta device
    paper_plan = plan["paper_scale"]
    assert paper_plan["expert_parallel_size"] == 128 and paper_plan["fits"]
    assert paper_plan["n_params_matmul"] < 0.01 * paper_plan["n_params_full"]  # top-1 of 1024
    summary = _loaded(outputs["pretrain_100b.train_summary"])
    moe = summary["moe"]
    assert 0 <= moe["drop_rate_after_warmup"] < 1 and moe["over_time"]
    load = moe["expert_load"][-1]["share"]
    assert len(load) == 1 and len(load[0]) == 4  # tiny: 2 blocks, MoE in the second
    # exported shard by shard, loaded in one process with all 4 experts for the samples
    assert (tmp_path / "model" / "model.safetensors.index.json").exists()
    assert not (tmp_path / "model" / "model.safetensors").exists()
    samples = _loaded(outputs["pretrain_100b.samples"])
    assert all(len(rows) == 2 for rows in samples.values())
