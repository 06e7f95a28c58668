"""Kedro hooks: the driver's allocator setting, and Ray started or joined once per Kedro session
from `conf/<env>/ray.yml`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kedro.framework.hooks import hook_impl

from m6_pipeline.allocator import retain_freed_memory, worker_environment
from m6_pipeline.cluster_env import check_node_versions, runtime_env
from m6_pipeline.ray_data_context import configure_data_context

log = logging.getLogger(__name__)


class AllocatorHook:
    @hook_impl
    def after_context_created(self, context) -> None:
        """The stages that train in the driver (VQGAN, finetuning, text-to-image) reuse freed
        tensor memory (m6_pipeline.allocator); Ray Train workers set it for themselves."""
        setting = retain_freed_memory()
        log.info("allocator: %s", setting.reason)


class RayHook:
    @hook_impl
    def after_context_created(self, context) -> None:
        import ray
        import ray.data

        conf = context.config_loader.get("ray") or {}
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if conf.get("auth_mode"):  # Ray >= 2.59 clusters use token auth; the driver must say so
            os.environ.setdefault("RAY_AUTH_MODE", conf["auth_mode"])
        address = conf.get("address")
        kwargs = {"log_to_driver": conf.get("log_to_driver", False)}
        if conf.get("worker_log_level"):
            kwargs["logging_config"] = ray.LoggingConfig(log_level=conf["worker_log_level"])
        # workers start with glibc's huge pages for tensor memory (m6_pipeline.allocator)
        extra = dict(conf.get("runtime_env") or {})
        extra["env_vars"] = {**worker_environment(), **extra.get("env_vars", {})}
        if conf.get("ship_code"):  # every node runs the driver's commit (m6_pipeline.cluster_env)
            project = Path(getattr(context, "project_path", None) or Path.cwd())
            kwargs["runtime_env"] = runtime_env(project, extra)
        else:
            kwargs["runtime_env"] = extra
        if address:
            log.info("joining the Ray cluster at %s", address)
            ray.init(address=address, **kwargs)
            if conf.get("check_versions", True):
                check_node_versions()
        else:
            # the dashboard needs ray[default]; on a cluster it is the head node's to start
            ray.init(num_cpus=conf.get("num_cpus"), object_store_memory=conf.get("object_store_memory"),
                     include_dashboard=bool(conf.get("include_dashboard", False)), **kwargs)
        configure_data_context(progress_bars=conf.get("progress_bars", True),
                               reserve_per_operator=conf.get("reserve_per_operator", False))
