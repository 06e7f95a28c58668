"""The precision a training or generation loop runs under: `auto`, `bf16` or `fp32` in its
parameters. A stage resolves `auto` once, for its own shapes and thread count, with the measured
probe of `m6_pipeline.precision_choice`, records the choice in its report, and runs its loop
under `autocast` of the resolved precision.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal

from m6_pipeline.precision_choice import (
    DEFAULT_CACHE,
    PrecisionChoice,
    Probe,
    ProbeShape,
    choose_precision,
    probe_linear,
)

LoopPrecision = Literal["auto", "bf16", "fp32"]


def ffn_shape(config, tokens: int) -> ProbeShape:
    """The feed-forward's first linear layer of an M6Config over `tokens` rows: the product a
    stage's `auto` is measured at."""
    return ProbeShape(tokens=tokens, d_in=config.d_model, d_out=config.ffn_width)


def resolve_loop_precision(
    requested: str, shape: ProbeShape, threads: int | None, *, cache_path: Path | None = DEFAULT_CACHE,
    probe: Probe = probe_linear,
) -> PrecisionChoice:
    """`requested` resolved for a CPU loop whose typical matrix product is `shape`, run with
    `threads` intra-op threads (None: torch's current setting). bf16 and fp32 stay as they are."""
    import torch

    threads = threads or torch.get_num_threads()
    return choose_precision(requested, shape=shape, threads=threads, cache_path=cache_path, probe=probe)


def autocast(precision: str, device: str = "cpu"):
    """bf16 autocast on `device` for "bf16"; "fp32" runs as it is. "auto" is resolved first."""
    if precision == "auto":
        raise ValueError(
            "precision `auto` reached a loop unresolved: resolve the stage's job first "
            "(m6_pipeline.tasks.precision, m6_pipeline.vqgan.train.resolve_precision)"
        )
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision {precision!r} is not one of bf16, fp32 (or auto, resolved first)")
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device, dtype=torch.bfloat16)
