"""A task's `variants`: the laptop run finetunes only the pretrained model for ITM (conf/local),
conf/base both; the pretrained variant cannot be left out; a variant left out says why."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import ValidationError

from m6_pipeline import settings
from m6_pipeline.tasks.finetune.config import VARIANTS
from m6_pipeline.tasks.itm.data import ITMJob
from m6_pipeline.tasks.vqa.config import VQAJob
from tests.conftest import ROOT


@pytest.mark.parametrize("env, itm_variants", [("base", VARIANTS), ("local", ("pretrained",))])
def test_conf_variants(env, itm_variants):
    loader = OmegaConfigLoader(str(ROOT / "conf"), env=env, **{
        k: v for k, v in settings.CONFIG_LOADER_ARGS.items() if k != "default_run_env"})
    params = loader["parameters"]
    assert ITMJob.model_validate(params["finetune_itm"]).variants == itm_variants
    # VQA and captioning compare pretrained with baseline in every environment
    assert VQAJob.model_validate(params["finetune_vqa"]).variants == VARIANTS


@pytest.mark.parametrize("variants", [["baseline"], [], ["pretrained", "pretrained"]])
def test_pretrained_variant_required_once(variants):
    with pytest.raises(ValidationError, match="list `pretrained`"):
        ITMJob(variants=variants)


def test_not_run_says_why():
    job = ITMJob(variants=["pretrained"])
    assert job.not_run("pretrained") is None
    assert job.not_run("baseline") == {"task": "itm", "variant": "baseline",
                                       "not_run": "itm: `variants` is ['pretrained']"}
    assert ITMJob().not_run("baseline") is None
