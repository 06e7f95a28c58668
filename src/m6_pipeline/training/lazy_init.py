"""Building the model in a worker: lazily under the plugins that shard parameters, eagerly under
torch_ddp.

Under ColossalAI's `LazyInitContext` a parameter is a `LazyTensor`: its shape and the recorded
init ops, no storage. The Booster materialises it: Gemini one parameter at a time as it fills its
chunks (and keeps this rank's part), LowLevelZero as it flattens the parameters, the hybrid
plugins after shardformer has cut each tensor to this rank's part. No worker then holds the whole
model in host memory. torch_ddp replicates the model, so every worker builds it whole.

M6's weights are seeded per tensor (`M6Model(seed=...)`), so the materialised weights equal the
eager ones; the seed must be passed, as a random draw under the context reads 0.
"""

from __future__ import annotations

import contextlib

from m6_pipeline.model.config import M6Config
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.model.moe import ExpertParallel

# the Booster plugins whose ranks each keep a part of the parameters (ZeRO, tensor or expert
# parallelism); LowLevelZero shards the optimizer states and gradients, and materialises lazily
SHARDING_PLUGINS = frozenset({"low_level_zero", "gemini", "hybrid_parallel", "moe_hybrid_parallel"})


def builds_lazily(plugin: str) -> bool:
    """Whether a worker under `plugin` builds the model under `LazyInitContext`."""
    return plugin in SHARDING_PLUGINS


def build_model(
    config: M6Config, plugin: str, *, seed: int, expert_parallel: ExpertParallel | None = None
) -> M6Model:
    """M6 with weights seeded by `seed`: lazy (for the Booster to materialise) under a sharding
    plugin, materialised here under torch_ddp."""
    context = contextlib.nullcontext()
    if builds_lazily(plugin):
        from colossalai.lazy import LazyInitContext

        context = LazyInitContext()
    with context:
        return M6Model(config, expert_parallel=expert_parallel, seed=seed)


def materialise(model: M6Model) -> M6Model:
    """Every lazy parameter and buffer made real, in place (what a Booster plugin does; for tests
    and for tools that need the whole model without a Booster)."""
    from colossalai.lazy import LazyInitContext

    return LazyInitContext.materialize(model)
