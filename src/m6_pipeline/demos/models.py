"""The exported models the demos run, loaded from the paths of DemoConfig. A missing file is a
MissingCheckpoint naming the pipeline that writes it (a task pipeline makes the stages it needs
when they are missing, so the task's own pipeline is named first)."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.features.patches import PatchExtractor
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.pretrained import CARD, load_pretrained, weights_path
from m6_pipeline.precision_choice import PrecisionChoice
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tasks.precision import resolve_generation_precision
from m6_pipeline.vqgan import VQGAN, load_vqgan
from m6_pipeline.vqgan.store import WEIGHTS as VQGAN_WEIGHTS

log = logging.getLogger(__name__)


class MissingCheckpoint(FileNotFoundError):
    """A model file the demo needs does not exist yet; `pipeline` makes it."""

    def __init__(self, path: Path, what: str, pipeline: str):
        super().__init__(f"no {what} at {path}: run `kedro run --pipeline={pipeline}` first")
        self.path, self.pipeline = Path(path), pipeline


def require(path: Path, what: str, pipeline: str) -> Path:
    if not Path(path).exists():
        raise MissingCheckpoint(path, what, pipeline)
    return Path(path)


@dataclass(frozen=True)
class TextModel:
    """An exported M6, its card, the tokenizer it was trained with and the precision it
    generates in (DemoConfig.precision, resolved when the model is loaded)."""

    model: M6Model
    card: dict
    tokenizer: Tokenizer
    precision: PrecisionChoice = field(kw_only=True)

    @property
    def special(self) -> SpecialTokens:
        return SpecialTokens.of(self.tokenizer)


@dataclass(frozen=True)
class ImageTextModel(TextModel):
    """A finetuned image-to-text M6 with the patch extractor and the image geometry
    (`features.image_size`, `features.grid`) its patch features were made with."""

    extractor: PatchExtractor
    features: FeaturesConfig


@dataclass(frozen=True)
class TextToImageModel(TextModel):
    vqgan: VQGAN


def _m6(model_dir: Path, what: str, pipeline: str) -> tuple[M6Model, dict]:
    require(weights_path(Path(model_dir)), what, pipeline)
    require(Path(model_dir) / CARD, f"model card of the {what}", pipeline)
    return load_pretrained(Path(model_dir))


def _precision(config: DemoConfig, model: M6Model, rows: int, what: str) -> PrecisionChoice:
    """The precision `model` generates in, for a request of `rows` sequences decoded at once."""
    choice = resolve_generation_precision(config.precision, model.config, rows)
    log.info("%s generates in %s (%s)", what, choice.precision, choice.reason)
    return choice


def _tokenizer(config: DemoConfig, pipeline: str) -> Tokenizer:
    return Tokenizer.from_file(str(require(config.tokenizer, "tokenizer", pipeline)))


def load_patch_extractor(path: Path, pipeline: str = "features") -> PatchExtractor:
    """The `features` stage's pickled extractor (a file this project wrote: pickle is trusted here)."""
    with require(path, "patch extractor", pipeline).open("rb") as file:
        extractor = pickle.load(file)
    if hasattr(extractor, "eval"):
        extractor.eval()
    return extractor


def load_prompted_model(config: DemoConfig) -> TextModel:
    """The pretrained M6 that forum QA and poems prompt without finetuning."""
    model, card = _m6(config.pretrained, "pretrained M6", "pretrain_base")
    return TextModel(model, card, _tokenizer(config, "pretrain_base"),
                     precision=_precision(config, model, 1, "the pretrained M6"))


def load_image_text_model(config: DemoConfig, task: str, features: FeaturesConfig) -> ImageTextModel:
    """The finetuned M6 of `task` ("caption" or "vqa") and the patch extractor."""
    if task not in ("caption", "vqa"):
        raise ValueError(f"no image-to-text demo for task {task!r}: caption or vqa")
    pipeline = f"finetune_{task}"
    model, card = _m6(getattr(config, task), f"finetuned {task} model", pipeline)
    tokenizer = _tokenizer(config, pipeline)
    extractor = load_patch_extractor(config.patch_extractor, pipeline)
    wanted = (model.config.n_patches, model.config.d_patch_feature)
    given = (features.n_patches, extractor.d_feature)
    if wanted != given:
        raise ValueError(
            f"{getattr(config, task)} was trained on {wanted[0]} patches of {wanted[1]} features; "
            f"the features parameters and {config.patch_extractor} give {given[0]} of {given[1]}: "
            "run the app with the --env the models were trained with"
        )
    return ImageTextModel(model, card, tokenizer, extractor, features,
                          precision=_precision(config, model, 1, f"the {task} model"))


def load_text_to_image_model(config: DemoConfig) -> TextToImageModel:
    """The M6 finetuned to write VQGAN codes, and the VQGAN that turns codes into pixels."""
    model, card = _m6(config.t2i, "text-to-image model", "finetune_t2i")
    require(Path(config.vqgan) / VQGAN_WEIGHTS, "VQGAN", "vqgan")
    vqgan = load_vqgan(config.vqgan)
    if vqgan.config.n_codes != card["n_codes"]:
        raise ValueError(f"{config.t2i} writes {card['n_codes']} codes; the VQGAN in {config.vqgan} "
                         f"decodes {vqgan.config.n_codes}: rerun `kedro run --pipeline=finetune_t2i`")
    return TextToImageModel(model, card, _tokenizer(config, "finetune_t2i"), vqgan,
                            precision=_precision(config, model, config.max_images, "the text-to-image model"))
