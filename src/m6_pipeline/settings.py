"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

from m6_pipeline.hooks import AllocatorHook, RayHook
from m6_pipeline.precision_choice import CONFIG_RESOLVERS
from m6_pipeline.run_record import RunRecordHook
from m6_pipeline.run_times import RunTimesHook

# RunTimesHook writes data/08_reporting/run_times.json: each node's wall time and peak memory;
# RunRecordHook data/08_reporting/runs/<run id>.json: commit, environment, parameters, metrics
HOOKS = (AllocatorHook(), RayHook(), RunTimesHook(), RunRecordHook())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/<env>/ray.yml: where Ray runs (local by default, a cluster address in conf/cluster)
    "config_patterns": {"ray": ["ray*", "ray*/**"]},
    # an environment overrides single keys of conf/base, not whole parameter trees
    "merge_strategy": {"parameters": "soft", "ray": "soft"},
    # conf/local's budgets: `${by_bf16_speed:FAST,SLOW}`, FAST where bf16 runs natively and fast
    "custom_resolvers": CONFIG_RESOLVERS,
}
