"""A two-node loopback Ray cluster joined the way `kedro run --env=cluster` joins one: conf/cluster's
ray.yml (code shipped, versions checked) pointed at the cluster, through the Ray hook. For the
scripts the cluster tests run in fresh interpreters (a pytest process may hold a local Ray)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace


@contextmanager
def joined_cluster(conf: dict, project: str) -> Iterator[None]:
    """Start a head and a second node of one CPU each, join them with `conf`, and shut both
    down after the block."""
    import ray
    from ray.cluster_utils import Cluster

    from m6_pipeline.hooks import RayHook

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        conf = {**conf, "address": cluster.address}  # conf/cluster/ray.yml, pointed at this cluster
        conf.pop("auth_mode", None)  # cluster_utils starts its nodes with Ray's default auth
        RayHook().after_context_created(SimpleNamespace(config_loader={"ray": conf}, project_path=project))
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
