"""The Streamlit app's settings: the `app` parameters of the Kedro configuration (conf/base,
overridden by the run environment), validated. `streamlit run app/streamlit_app.py -- --env local`
picks the environment as `kedro run --env` does."""

from __future__ import annotations

import argparse
from pathlib import Path

from kedro.config import OmegaConfigLoader
from pydantic import BaseModel, ConfigDict, Field

from m6_pipeline.demos.config import DemoConfig
from m6_pipeline.features.config import FeaturesConfig
from m6_pipeline.precision_choice import CONFIG_RESOLVERS


class AppSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    store: Path = Field(Path("data/07_model_output/human_eval/annotations/store.sqlite"),
                        description="the annotation store (SQLite, WAL)")
    batch_dir: Path = Field(Path("data/07_model_output/human_eval"),
                            description="the evaluate pipeline's batch: items.json, key.json, images.parquet")
    demos: DemoConfig = DemoConfig()
    features: FeaturesConfig = Field(FeaturesConfig(), description="the pipelines' `features` parameters: "
                                     "the image size and patch grid uploads are cut into, as in training")


def load_app_settings(conf_source: str | Path = "conf", env: str | None = None) -> AppSettings:
    loader = OmegaConfigLoader(conf_source=str(conf_source), base_env="base", default_run_env=env or "local",
                               custom_resolvers=CONFIG_RESOLVERS)
    parameters = loader["parameters"]
    return AppSettings.model_validate({**parameters.get("app", {}), "features": parameters.get("features", {})})


def settings_from_argv(argv: list[str]) -> AppSettings:
    """Settings from the script arguments after `streamlit run app/streamlit_app.py --`."""
    parser = argparse.ArgumentParser(prog="streamlit run app/streamlit_app.py --")
    parser.add_argument("--conf-source", default="conf")
    parser.add_argument("--env", default="local")
    args, _ = parser.parse_known_args(argv)
    return load_app_settings(args.conf_source, args.env)
