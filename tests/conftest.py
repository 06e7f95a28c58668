"""Shared fixtures: a local Ray for the tests that need the engine (started once a session)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
# offline machine: libraries that look for hub files (bitsandbytes via colossalai) fail fast
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_local():
    import ray
    import ray.data

    if not ray.is_initialized():
        # address="local": a cluster of this session's own, never one another process left running
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    from m6_pipeline.ray_data_context import configure_data_context

    configure_data_context(progress_bars=False)
    yield ray


@pytest.fixture
def lexicon_path() -> Path:
    return ROOT / "conf/base/lexicons/spam_lexicon.txt"
