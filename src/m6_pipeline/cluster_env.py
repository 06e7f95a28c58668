"""What every node of a Ray cluster runs: this commit's code, shipped with the job, on the same
versions of the libraries that decide the numbers.

`runtime_env(project_root)` ships the two packages a worker imports (`m6_pipeline` and the Kedro
`pipelines`) as Ray `py_modules`: they go ahead of whatever copy a node has installed, so every
node runs the driver's code, and data, virtual environments and Git history never travel.
`check_node_versions()` then asks one task on every alive node for its Python, torch, Ray and
ColossalAI versions and stops the run, naming the node and the library, where one differs: a
checkpoint written under one torch and resumed under another, or a gloo collective between two
Ray versions, fails far from its cause.
"""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

CHECKED = ("torch", "ray", "colossalai")
SHIPPED = ("src/m6_pipeline", "pipelines")
EXCLUDES = ["__pycache__", "*.pyc"]


def library_versions() -> dict[str, str | None]:
    """This process's Python and the versions of `CHECKED` (None where not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in CHECKED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def runtime_env(project_root: Path, extra: dict | None = None) -> dict:
    """The job's runtime environment: the project's packages as py_modules, plus `extra`
    (conf/cluster's `runtime_env`: env_vars, pip is not used here: nodes install the lock)."""
    modules = [str((Path(project_root) / module).resolve()) for module in SHIPPED]
    missing = [m for m in modules if not Path(m).is_dir()]
    if missing:
        raise FileNotFoundError(f"cannot ship {missing}: run from the project directory")
    env = {"py_modules": modules, "excludes": EXCLUDES}
    for key, value in (extra or {}).items():
        env[key] = {**env.get(key, {}), **value} if isinstance(value, dict) else value
    return env


def mismatches(driver: dict[str, str | None], nodes: dict[str, dict[str, str | None]]) -> list[str]:
    """One line per (node, library) whose version differs from the driver's."""
    return [
        f"node {node}: {name} {versions.get(name)} (the driver has {expected})"
        for node, versions in sorted(nodes.items())
        for name, expected in driver.items()
        if versions.get(name) != expected
    ]


def node_versions() -> dict[str, dict[str, str | None]]:
    """`library_versions()` as each alive node of the connected cluster reports it."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def report() -> dict[str, str | None]:
        from m6_pipeline.cluster_env import library_versions as versions

        return versions()

    alive = [node for node in ray.nodes() if node["Alive"]]
    refs = [
        report.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote()
        for node in alive
    ]
    names = [f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})" for node in alive]
    return dict(zip(names, ray.get(refs, timeout=300), strict=True))


def check_node_versions(driver: dict[str, str | None] | None = None) -> dict[str, dict[str, str | None]]:
    """Stop with a message if any node's versions differ from the driver's; returns them all."""
    driver = driver or library_versions()
    nodes = node_versions()
    wrong = mismatches(driver, nodes)
    if wrong:
        raise RuntimeError(
            "the cluster's nodes do not run the driver's libraries:\n  " + "\n  ".join(wrong)
            + "\ninstall requirements/lock.txt (and colossalai) on every node, or run the driver "
            "from a machine that matches them"
        )
    log.info("every node of the cluster (%d) runs %s", len(nodes), driver)
    return nodes
