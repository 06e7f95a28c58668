"""`precision: auto`: bf16 only where this hardware runs bf16 matrix products natively and fast.

On a CPU without bf16 instructions PyTorch emulates bf16, and a training step under bf16 autocast
runs ~25x slower than fp32; with AMX it runs 2-4x faster. So the choice is measured, not assumed:
a short probe times one linear layer's forward and backward at the run's shapes on one core,
fp32 against bf16 autocast (the casts included, as a training step pays them), and bf16 must win
by a margin. The result is cached per machine (CPU model and flags, instruction-set caps, torch
version and capability, shape) so each machine probes once. On CUDA, bf16 where the GPU supports it.

Explicit `bf16`, `bf16-master` and `fp32` are taken as they are.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from m6_pipeline.machine import describe_machine, has_native_bf16

log = logging.getLogger(__name__)

Requested = Literal["auto", "bf16", "bf16-master", "fp32"]
Probe = Callable[["ProbeShape"], "ProbeResult"]  # measures one shape on this machine
DEFAULT_CACHE = Path.home() / ".cache" / "m6-pipeline" / "precision_probe.json"
# bf16 autocast must beat fp32 by this much on the probe: a step has work the probe does not
# (casts of small tensors, norms, softmax in fp32) that eats part of a small matmul gain
MIN_SPEEDUP = 1.25


@dataclass(frozen=True)
class ProbeShape:
    """One linear layer of the run: `tokens` rows of width `d_in` into `d_out` features."""

    tokens: int
    d_in: int
    d_out: int

    def __str__(self) -> str:
        return f"[{self.tokens}x{self.d_in}]@[{self.d_in}x{self.d_out}]"


@dataclass(frozen=True)
class ProbeResult:
    """GFLOP/s of forward + backward of the layer, fp32 and under bf16 autocast."""

    fp32_gflops: float
    bf16_gflops: float

    @property
    def speedup(self) -> float:
        return self.bf16_gflops / self.fp32_gflops


@dataclass(frozen=True)
class PrecisionChoice:
    """What a stage asked for, what it runs, and why (recorded in its summary)."""

    requested: str
    precision: str
    reason: str
    device: str = "cpu"
    probe: dict | None = None
    machine: dict = field(default_factory=dict)

    @property
    def autocast_bf16(self) -> bool:
        return self.precision == "bf16"

    def record(self) -> dict:
        return asdict(self)


def probe_linear(shape: ProbeShape, *, seconds: float = 0.4, max_rounds: int = 50) -> ProbeResult:
    """Time forward + backward of `x @ w.T` in fp32 and under bf16 autocast on one thread.

    One thread, because the question is the core's kernels (native or emulated bf16), and one
    core is what a busy machine can still give a probe. The two precisions alternate, call by
    call, for about `seconds` in all (at least 3 rounds, at most `max_rounds`), and each keeps
    its fastest call: interference from other processes slows calls, it never speeds one up."""
    import torch

    from m6_pipeline.torch_threads import intra_op_threads

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape.tokens, shape.d_in, generator=gen)
    w = torch.randn(shape.d_out, shape.d_in, generator=gen, requires_grad=True)
    flops = 6 * shape.tokens * shape.d_in * shape.d_out  # forward 2, backward 4

    def seconds_of_one_call(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = torch.nn.functional.linear(x, w)
        y.float().sum().backward()
        w.grad = None
        return time.perf_counter() - started

    best = {False: float("inf"), True: float("inf")}
    with intra_op_threads(1):
        seconds_of_one_call(False), seconds_of_one_call(True)  # warm-up: kernels, allocations
        started, rounds = time.perf_counter(), 0
        while rounds < 3 or (rounds < max_rounds and time.perf_counter() - started < seconds):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], seconds_of_one_call(bf16))
            rounds += 1
    return ProbeResult(fp32_gflops=flops / best[False] / 1e9, bf16_gflops=flops / best[True] / 1e9)


def cache_key(machine: dict, shape: ProbeShape) -> str:
    caps = ",".join(f"{k}={v}" for k, v in sorted(machine.get("isa_caps", {}).items()))
    parts = [machine["cpu_model"], ",".join(machine["cpu_flags"]), caps, machine["torch"],
             machine["torch_cpu_capability"], str(shape)]
    return " | ".join(parts)


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or unreadable: probe again and rewrite it


def _write_cache(path: Path, cache: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{time.time_ns()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(path)  # atomic: two workers probing at once leave one whole file
    except OSError as exc:
        log.warning("could not cache the precision probe in %s (%s); it will run again next time", path, exc)


def measured_probe(
    shape: ProbeShape, *, cache_path: Path | None = DEFAULT_CACHE,
    probe: Callable[[ProbeShape], ProbeResult] = probe_linear, machine: dict | None = None,
) -> tuple[ProbeResult, bool]:
    """The probe's result for this machine and shape: (result, came from cache)."""
    machine = machine or describe_machine()
    key = cache_key(machine, shape)
    cache = _read_cache(cache_path) if cache_path else {}
    if key in cache:
        hit = cache[key]
        return ProbeResult(hit["fp32_gflops"], hit["bf16_gflops"]), True
    result = probe(shape)
    if cache_path:
        cache = _read_cache(cache_path)  # re-read: another process may have written meanwhile
        cache[key] = {"fp32_gflops": result.fp32_gflops, "bf16_gflops": result.bf16_gflops,
                      "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write_cache(cache_path, cache)
    return result, False


def choose_precision(
    requested: str, *, shape: ProbeShape, threads: int, device: str = "cpu",
    cache_path: Path | None = DEFAULT_CACHE,
    probe: Callable[[ProbeShape], ProbeResult] = probe_linear,
    machine: dict | None = None, cuda_bf16: bool | None = None,
) -> PrecisionChoice:
    """Resolve `requested` (auto | bf16 | bf16-master | fp32) for a loop on `device` whose
    typical linear layer is `shape`, run with `threads` intra-op threads (recorded; the probe
    compares the kernels of one core, which is what differs between native and emulated bf16)."""
    machine = machine or describe_machine()
    if requested not in ("auto", "bf16", "bf16-master", "fp32"):
        raise ValueError(f"precision {requested!r} is not one of auto, bf16, bf16-master, fp32")
    if requested != "auto":
        return PrecisionChoice(requested, requested, "set explicitly in parameters", device, machine=machine)
    if device == "cuda":
        if cuda_bf16 is None:
            import torch

            cuda_bf16 = torch.cuda.is_bf16_supported()
        precision = "bf16" if cuda_bf16 else "fp32"
        reason = "the GPU supports bf16" if cuda_bf16 else "the GPU has no bf16 support"
        return PrecisionChoice(requested, precision, reason, device, machine=machine)
    result, cached = measured_probe(shape, cache_path=cache_path, probe=probe, machine=machine)
    native = has_native_bf16(machine)
    precision = "bf16" if result.speedup >= MIN_SPEEDUP else "fp32"
    flags = ", ".join(f for f in machine["cpu_flags"] if "bf16" in f or "amx" in f) if native else ""
    flags = flags or ("no bf16 instructions" if not machine.get("isa_caps") else "bf16 kernels capped away")
    reason = (
        f"bf16 autocast ran {result.speedup:.2f}x the fp32 speed ({result.bf16_gflops:.1f} against "
        f"{result.fp32_gflops:.1f} GFLOP/s on one core) at {shape}; "
        f"{'at least' if precision == 'bf16' else 'below'} {MIN_SPEEDUP}x picks "
        f"{precision} ({flags}{', measured earlier' if cached else ''})"
    )
    if precision == "bf16" and not native:
        reason += "; note: the CPU reports no bf16 instructions, yet bf16 measured faster"
    log.info("precision auto -> %s: %s", precision, reason)
    probe_record = {"shape": str(shape), "threads": threads, "fp32_gflops": result.fp32_gflops,
                    "bf16_gflops": result.bf16_gflops, "speedup": result.speedup, "cached": cached}
    return PrecisionChoice(requested, precision, reason, device, probe_record, machine)


# the laptop pretraining step's FFN (conf/local: 16 sequences of 160 positions, d 256) on one
# worker thread: the shape that names a machine's class for the default run's budgets
LAPTOP_SHAPE = ProbeShape(tokens=2560, d_in=256, d_out=1024)


def runs_bf16_fast() -> bool:
    """Whether `auto` picks bf16 on this machine at the laptop shape (a GPU counts as fast)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return choose_precision("auto", shape=LAPTOP_SHAPE, threads=1, device=device,
                            cache_path=DEFAULT_CACHE, probe=probe_linear).precision == "bf16"


def by_bf16_speed(fast, slow):
    """The config resolver `${by_bf16_speed:FAST,SLOW}`: FAST where this machine runs bf16 natively
    and fast, SLOW where it computes in fp32 (e.g. AVX2-only CPUs, ~2-4x less arithmetic a
    second). The default run's step budgets use it, so `make run` fits its time on both kinds."""
    return fast if runs_bf16_fast() else slow


# the project's OmegaConf resolvers: every loader of conf/ (Kedro's settings, the app) registers them
CONFIG_RESOLVERS = {"by_bf16_speed": by_bf16_speed}
