"""Text-to-image (§4.1) from one Chinese prompt: the finetuned M6 samples VQGAN codes after the
prompt (at the [BOS] position it was finetuned with), the VQGAN decodes them to pixels."""

from __future__ import annotations

import numpy as np

from m6_pipeline.demos.models import TextToImageModel
from m6_pipeline.tasks.t2i.config import T2ISampling
from m6_pipeline.tasks.t2i.evaluate import generate_images


def text_to_image(m: TextToImageModel, prompt: str, n_images: int, sampling: T2ISampling,
                  seed: int = 0) -> list[np.ndarray]:
    """`n_images` samples for `prompt`, each uint8 [r, r, 3] (r: the VQGAN's resolution).
    Reranking is off: every sample is shown."""
    if not prompt.strip():
        raise ValueError("describe the image to draw")
    sampling = T2ISampling.model_validate({**sampling.model_dump(), "samples_per_prompt": n_images,
                                           "rerank": False})
    ids = m.tokenizer.encode(prompt.strip(), add_special_tokens=False).ids
    ids = ids[: m.card["max_prompt_tokens"]]
    images, _ = generate_images(m.model, m.vqgan, [ids], m.special, sampling, seed,
                                m.card["target_start"], precision=m.precision.precision)
    return list(images[0])
