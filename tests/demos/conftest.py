"""A tiny trained world in the layout the pipelines write: a WordPiece tokenizer, a patch
autoencoder pickled as the catalog's PickleDataset does, random-weight M6 models exported as
the pretraining, finetuning and text-to-image stages export them, a VQGAN, a few catalogue
pairs, and a Kedro conf directory whose `app.demos` and `features` parameters point at them."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from kedro_datasets.pickle import PickleDataset
from PIL import Image

from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.patch_autoencoder import PatchAutoencoder
from m6_pipeline.model import M6Config, M6Model
from m6_pipeline.tasks.finetune.models import export_finetuned
from m6_pipeline.tasks.t2i.config import T2IData, T2IJob
from m6_pipeline.tokenization import TokenizerConfig, train_wordpiece
from m6_pipeline.tokenization.wordpiece import SPECIAL_TOKENS
from m6_pipeline.vqgan import VQGAN, VQGANConfig, save_vqgan
from pipelines.finetune_t2i.nodes import _export as export_t2i

CHARACTERS = "床前明月光疑是地上霜举头望低思故乡春眠不觉晓处闻啼鸟夜来风雨声花落知多少"
PRODUCTS = ["这款红色连衣裙采用条纹设计，中号尺寸。", "本店新款背包，颜色为灰色，迷彩图案，尺码是大号。",
            "这款黄色雨伞采用圆点设计，中号尺寸。"]
QUESTIONS = ["这件商品是什么颜色的？回答：红色", "夏天穿什么衣服？回答：短袖", "春夜 正文："]
FEATURES = FeaturesConfig(image_size=16, grid=2, d_feature=8)  # 4 patches of 8 px
VQGAN_CONFIG = VQGANConfig(resolution=16, channels=8, channel_mult=(1, 2), n_res_blocks=1, d_latent=8,
                           codebook_size=16, codebook_dim=4, kmeans_init=False)  # 8x8 = 64 codes


@dataclass(frozen=True)
class TinyWorld:
    root: Path
    demos: DemoConfig
    features: FeaturesConfig
    conf_dir: Path  # conf/base/parameters_{app,features}.yml and an empty conf/local


def _passages(seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    poems = []
    for _ in range(40):
        lines = ["".join(rng.choices(CHARACTERS, k=rng.choice((5, 7)))) for _ in range(4)]
        poems.append("".join(line + "，。"[i % 2] for i, line in enumerate(lines)))
    return [poems + PRODUCTS * 3 + QUESTIONS * 3]


def _png(seed: int, size: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), 255, np.uint8)
    image[8:32, 10:30] = rng.integers(0, 256, 3)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int) -> bytes:
    """A 100x100 PNG whose header is patched to declare side x side pixels (CRC fixed)."""
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), "white").save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _write_pairs(directory: Path, n: int = 3) -> None:
    directory.mkdir(parents=True)
    pq.write_table(pa.table({
        "id": [f"catalogue/{i:06d}" for i in range(n)],
        "source": ["catalogue"] * n,
        "text": [PRODUCTS[i % len(PRODUCTS)] for i in range(n)],
        "image": pa.array([_png(i) for i in range(n)], pa.large_binary()),
    }), directory / "pairs-00000.parquet")


def _m6(vocab_size: int, **overrides) -> M6Model:
    """Random weights, but the special tokens' embeddings (tied to the output layer) are zero:
    their logits are 0 while some word's is positive, so greedy decoding never ends early and
    writes the whole token budget of words; [EOS] comes only when a constraint forces it."""
    config = M6Config.of_size("tiny", vocab_size=vocab_size, n_patches=FEATURES.n_patches,
                              d_patch_feature=FEATURES.d_feature, dropout=0.0, max_positions=160,
                              **overrides)
    model = M6Model(config).eval()
    with torch.no_grad():
        model.embeddings.word.weight[: len(SPECIAL_TOKENS)] = 0
    return model


def write_conf(conf_dir: Path, demos: DemoConfig, features: FeaturesConfig) -> Path:
    """A Kedro conf source with base parameters for the app and the features stage."""
    (conf_dir / "base").mkdir(parents=True)
    (conf_dir / "local").mkdir()
    app = {"app": {"demos": demos.model_dump(mode="json")}}
    (conf_dir / "base" / "parameters_app.yml").write_text(yaml.safe_dump(app, allow_unicode=True))
    features_params = {"features": features.model_dump(mode="json")}
    (conf_dir / "base" / "parameters_features.yml").write_text(yaml.safe_dump(features_params))
    return conf_dir


@pytest.fixture(scope="package")
def tiny_world(tmp_path_factory) -> TinyWorld:
    root = tmp_path_factory.mktemp("tiny_world")
    torch.manual_seed(0)
    tokenizer = train_wordpiece(_passages(), TokenizerConfig(vocab_size=150, min_frequency=1))[0]
    # the default layout under `root`; public, so that the page tests need no sign-in (tests/app
    # check the default: demos behind sign-in)
    demos = DemoConfig(public=True).resolved(root)
    demos.tokenizer.parent.mkdir(parents=True)
    tokenizer.save(str(demos.tokenizer))
    features = FEATURES.model_copy(update={"pairs_dir": root / "data/03_primary/pairs"})
    _write_pairs(features.pairs_dir)
    extractor = PatchAutoencoder(FEATURES.patch_size, FEATURES.d_feature, width=4).eval()
    demos.patch_extractor.parent.mkdir(parents=True)
    PickleDataset(filepath=str(demos.patch_extractor)).save(extractor)

    vocab = tokenizer.get_vocab_size()
    special = {"pad": 0, "sep": 3, "mask": 4, "bos": 5, "eos": 6}
    export_finetuned(_m6(vocab), demos.pretrained, {"run": "tiny", "special_tokens": special})
    for task, prompt_tokens, target_tokens in (("caption", 1, 8), ("vqa", 24, 4)):
        export_finetuned(_m6(vocab), getattr(demos, task), {
            "task": task, "variant": "pretrained", "special_tokens": special,
            "max_prompt_tokens": prompt_tokens, "max_target_tokens": target_tokens})

    vqgan = VQGAN(VQGAN_CONFIG).eval()
    save_vqgan(vqgan, demos.vqgan)
    job = T2IJob(out_dir=demos.t2i, data=T2IData(max_prompt_tokens=8))
    manifest = {"n_codes": VQGAN_CONFIG.n_codes, "codebook_size": VQGAN_CONFIG.codebook_size}
    export_t2i(_m6(vocab, n_image_codes=VQGAN_CONFIG.codebook_size), job, {"run": "tiny"}, manifest)
    return TinyWorld(root, demos, features, write_conf(root / "conf", demos, features))
