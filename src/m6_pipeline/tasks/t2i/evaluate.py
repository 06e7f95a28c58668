"""What §4.1 can be measured by offline: do generated images show the colour, category and
pattern their prompt states? Judged by the attribute classifier, against chance, against the
same classifier on real held-out images (its ceiling) and on VQGAN reconstructions (the first
stage's ceiling); plus diversity across samples and a Fréchet distance in the classifier's
feature space. The headline variant's images of the first held-out prompts are also kept,
as PNG, for the human evaluation of quality and faithfulness."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tokenizers import Tokenizer

from m6_pipeline.corpus.images import encode_image
from m6_pipeline.loop_precision import autocast
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.t2i.attributes import ATTRIBUTES
from m6_pipeline.tasks.t2i.classifier import AttributeClassifier, accuracy, frechet_distance, predict
from m6_pipeline.tasks.t2i.config import T2ISampling
from m6_pipeline.tasks.t2i.data import T2IRecord
from m6_pipeline.tasks.t2i.fid import fid
from m6_pipeline.tasks.t2i.generate import final_codes, generate_codes
from m6_pipeline.vqgan.images import to_uint8
from m6_pipeline.vqgan.model import VQGAN

log = logging.getLogger(__name__)


@torch.no_grad()
def generate_images(
    model: M6Model, vqgan: VQGAN, prompts: list[list[int]], special: SpecialTokens,
    sampling: T2ISampling, seed: int, target_start: int, chunk: int = 32, precision: str = "fp32",
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [n_prompts, samples, r, r, 3], codes [n_prompts, samples, n_codes]) for
    `prompts`; with reranking, samples = 1 (the chosen one). The M6 samples the codes under
    `precision` (bf16 or fp32); the VQGAN decodes them in fp32."""
    generator = torch.Generator().manual_seed(seed)
    images, codes = [], []
    for start in range(0, len(prompts), chunk):
        with autocast(precision):
            generated = generate_codes(
                model, prompts[start : start + chunk], vqgan.config.n_codes, special, sampling, generator,
                target_start=target_start,
            )
        shown = final_codes(generated)
        n, k, _ = shown.shape
        pixels = to_uint8(vqgan.decode_codes(shown.reshape(n * k, -1)))
        images.append(pixels.reshape(n, k, *pixels.shape[1:]))
        codes.append(shown.numpy())
    return np.concatenate(images), np.concatenate(codes)


def diversity(images: np.ndarray, codes: np.ndarray) -> dict[str, float]:
    """Across the samples of each prompt: mean pairwise pixel L1 (0-255 scale) and the share of
    distinct code sequences. None of either when there is one sample per prompt."""
    if images.shape[1] < 2:
        return {"mean_pairwise_pixel_l1": None, "distinct_code_sequences": None}
    distances = [
        float(np.abs(row[i].astype(np.float32) - row[j].astype(np.float32)).mean())
        for row in images for i, j in combinations(range(len(row)), 2)
    ]
    distinct = [len({c.tobytes() for c in row}) / len(row) for row in codes]
    return {"mean_pairwise_pixel_l1": float(np.mean(distances)), "distinct_code_sequences": float(np.mean(distinct))}


def evaluate_generation(
    model: M6Model,
    vqgan: VQGAN,
    classifier: AttributeClassifier,
    special: SpecialTokens,
    records: list[T2IRecord],
    real_images: np.ndarray,
    unseen: list[T2IRecord],
    variants: dict[str, T2ISampling],
    seed: int,
    target_start: int,
    inception_weights=None,
    keep_images_of: str | None = None,
    precision: str = "fp32",
) -> tuple[dict, np.ndarray | None]:
    """(metrics, kept images) for `records` (held-out prompts with stated attributes) and their
    real images uint8 [n, r, r, 3], and for the prompts of the unseen attribute combination.
    Kept images: the first sample of each of `records` under variant `keep_images_of`, uint8
    [n, r, r, 3] (None when no variant is named): the metrics' own images, not new ones.
    The codes are sampled under `precision`; the judge and the VQGAN run in fp32."""
    if keep_images_of is not None and keep_images_of not in variants:
        raise ValueError(f"keep_images_of={keep_images_of!r} is not a variant; known: {sorted(variants)}")
    kept = None
    attributes = [r.attributes for r in records]
    prompts = [r.prompt_ids for r in records]
    real_pred, real_features = predict(classifier, real_images)
    reconstructions = np.concatenate([
        to_uint8(vqgan.decode_codes(torch.as_tensor(np.stack([r.codes for r in records[i : i + 64]]).astype(np.int64))))
        for i in range(0, len(records), 64)
    ])
    rec_pred, rec_features = predict(classifier, reconstructions)
    counts = {n: Counter(a[n] for a in attributes) for n in ATTRIBUTES}
    out: dict = {
        "n_prompts": len(records),
        "chance": {n: 1 / len(v) for n, v in ATTRIBUTES.items()},
        "majority_class": {n: counts[n].most_common(1)[0][1] / len(records) for n in ATTRIBUTES},
        "real_images": accuracy(real_pred, attributes),
        "vqgan_reconstructions": accuracy(rec_pred, attributes),
        "classifier_frechet_distance": {"vqgan_reconstructions": frechet_distance(real_features, rec_features)},
        "variants": {},
    }
    for name, sampling in variants.items():
        images, codes = generate_images(model, vqgan, prompts, special, sampling, seed, target_start,
                                        precision=precision)
        k = images.shape[1]
        if name == keep_images_of:
            kept = images[:, 0].copy()  # a copy: the view would keep all samples alive
        flat = images.reshape(-1, *images.shape[2:])
        pred, features = predict(classifier, flat)
        repeated = [a for a in attributes for _ in range(k)]
        result = {
            "sampling": sampling.model_dump(),
            "attribute_accuracy": accuracy(pred, repeated),
            "diversity": diversity(images, codes),
            "classifier_frechet_distance": frechet_distance(real_features, features),
            "fid": fid(inception_weights, real_images, flat) if inception_weights else None,
        }
        if unseen:
            u_images, _ = generate_images(
                model, vqgan, [r.prompt_ids for r in unseen], special, sampling, seed + 1, target_start,
                precision=precision,
            )
            u_pred, _ = predict(classifier, u_images.reshape(-1, *u_images.shape[2:]))
            result["unseen_combination_accuracy"] = accuracy(
                u_pred, [r.attributes for r in unseen for _ in range(u_images.shape[1])]
            )
        out["variants"][name] = result
        log.info("t2i %s: attribute accuracy %s", name, result["attribute_accuracy"])
    return out, kept


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [r, r, 3] -> lossless PNG bytes (the corpus stage's encoder)."""
    return encode_image(Image.fromarray(np.ascontiguousarray(image)), "PNG")


def prompts_as_given(tokenizer: Tokenizer, texts: list[str], max_tokens: int) -> list[str]:
    """Each text up to the end of its `max_tokens`-th token: what the model was conditioned on
    (prompts are cut to data.max_prompt_tokens), so annotators judge faithfulness to that."""
    given = []
    for text, encoding in zip(texts, tokenizer.encode_batch(texts, add_special_tokens=False)):
        cut = len(encoding.offsets) > max_tokens > 0
        given.append(text[: encoding.offsets[max_tokens - 1][1]] if cut else text)
    return given


def prediction_rows(
    records: list[T2IRecord], images: np.ndarray, prompts: list[str] | None = None, model: str = "pretrained"
) -> tuple[list[dict], pd.DataFrame]:
    """(rows, images table) for the human evaluation: one row per record, in the shape of the
    other tasks' predictions.json, whose output is the key of its image (sha256 of the PNG,
    16 hex digits) in the table of columns `image_key` (str) and `png` (bytes).

    images: uint8 [len(records), r, r, 3], one per record; prompts: the text shown per record
    (default its full text; see prompts_as_given); `image_id` is the real pair the prompt came
    from (a t2i record is one pair), `reference` None: annotators judge the image against the
    prompt, not against the real photo; `meta.stated` the attributes the metrics judge."""
    prompts = [r.text for r in records] if prompts is None else prompts
    if not len(images) == len(prompts) == len(records):
        raise ValueError(
            f"{len(records)} t2i records, {len(prompts)} prompts and {len(images)} images: "
            "one prompt and one image per record is needed"
        )
    rows, table = [], {}
    for record, prompt, image in zip(records, prompts, images):
        png = png_bytes(image)
        key = hashlib.sha256(png).hexdigest()[:16]
        table[key] = png  # two identical images share one key and one stored PNG
        rows.append({"id": record.id, "prompt": prompt, "image_id": record.id, "reference": None,
                     "meta": {"stated": record.attributes}, "outputs": {model: key}})
    return rows, pd.DataFrame({"image_key": list(table), "png": list(table.values())})
