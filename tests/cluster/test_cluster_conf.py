"""conf/cluster as Kedro loads it (paper-scale GPU runs, storage at URIs, code shipping and the
version check on), the runtime environment it ships, and the version comparison's message."""

from __future__ import annotations

import pytest
from kedro.config import OmegaConfigLoader

from m6_pipeline.cluster_env import library_versions, mismatches, runtime_env
from m6_pipeline.settings import CONFIG_LOADER_ARGS
from m6_pipeline.training.parameters import PretrainParameters
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster_conf() -> OmegaConfigLoader:
    return OmegaConfigLoader(conf_source=str(ROOT / "conf"), env="cluster", **CONFIG_LOADER_ARGS)


@pytest.mark.parametrize("stage", ["pretrain_base", "pretrain_10b", "pretrain_100b"])
def test_every_pretraining_stage_keeps_what_nodes_share_at_the_storage_uri(cluster_conf, stage):
    params = PretrainParameters.model_validate(cluster_conf["parameters"][stage]["pretrain"])
    assert params.workers.use_gpu and params.workers.num_workers >= 8  # conf/base's GPU cluster
    for uri in (params.workers.storage_path, params.shard_dir, params.model_dir):
        assert uri.startswith(f"s3://m6-pipeline/{stage}/"), uri
    assert not params.report_dir.startswith("s3://")  # reports stay with the driver
    if stage == "pretrain_100b":
        assert params.plugin.name == "moe_hybrid_parallel" and params.plugin.ep_size == 128


def test_the_cluster_ships_the_code_checks_versions_and_authenticates(cluster_conf):
    ray = cluster_conf["ray"]
    assert ray["address"] and ray["auth_mode"] == "token"
    assert ray["ship_code"] and ray["check_versions"]
    assert ray["runtime_env"]["env_vars"]["RAY_USAGE_STATS_ENABLED"] == "0"
    env = runtime_env(ROOT, ray["runtime_env"])
    assert env["py_modules"] == [str(ROOT / "src/m6_pipeline"), str(ROOT / "pipelines")]
    assert "__pycache__" in env["excludes"] and env["env_vars"]["KEDRO_DISABLE_TELEMETRY"] == "true"


def test_shipping_from_outside_the_project_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="run from the project directory"):
        runtime_env(tmp_path)


def test_a_version_mismatch_names_the_node_and_the_library():
    driver = library_versions()
    assert set(driver) == {"python", "torch", "ray", "colossalai"} and driver["torch"]
    nodes = {"10.0.0.2 (aa)": dict(driver), "10.0.0.3 (bb)": {**driver, "torch": "2.5.1", "ray": None}}
    assert mismatches(driver, nodes) == [
        f"node 10.0.0.3 (bb): torch 2.5.1 (the driver has {driver['torch']})",
        f"node 10.0.0.3 (bb): ray None (the driver has {driver['ray']})",
    ]
    assert mismatches(driver, {"10.0.0.2 (aa)": dict(driver)}) == []
