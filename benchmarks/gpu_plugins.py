"""A short Booster run of a small M6 under one ColossalAI plugin: the loss must fall and the
gradient norm after clipping must not exceed max_norm.

    python benchmarks/gpu_plugins.py --plugin low_level_zero [--steps 10] [--max-norm 0.1]
    python benchmarks/gpu_plugins.py --plugin torch_ddp --device cpu   # the same on CPU (gloo)
    python benchmarks/gpu_plugins.py --plugin gemini --dry-run         # args, imports, configs

One process: `colossalai.launch` with world size 1 (nccl on a GPU, gloo on CPU), the plugin
from `m6_pipeline.training.plugins.make_plugin` (hybrid_parallel at tp 1, moe_hybrid_parallel at
ep 1 with an MoE model), bf16, one fixed image-text batch (random patch features and tokens)
trained for --steps steps: memorising it makes the loss fall within a few steps.

Gradient norms (L2 over all parameters):
- pre-clip: from the parameters' gradients after backward where the plugin leaves them there
  (torch_ddp), else the plugin optimizer's own report (`get_grad_norm()`: the ZeRO plugins keep
  gradients in their buckets or chunks);
- post-clip: the gradients the inner torch optimizer steps with (a step pre-hook), divided by
  the `div_scale` Gemini hands its fused Adam instead of scaling the gradients.
torch_ddp is clipped here with the Booster optimizer's `clip_grad_by_norm` (as the training
loop does); the other plugins clip themselves when `make_plugin` passes them max_norm. The record
says which, and whether the plugin clipped. The optimizer is the training loop's
(training/optimizers.py): HybridAdam under gemini, whose fused CUDA kernel is built on first use.

Writes JSON to --output, default $OUT/gpu_plugin_<plugin>.json when $OUT is set, else
benchmarks/results/gpu_plugin_<plugin>.json. Exit status 3 when a check fails, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pydantic import BaseModel, ConfigDict, Field, model_validator  # noqa: E402

from m6_pipeline.model.config import M6Config  # noqa: E402
from m6_pipeline.model.moe import MoEConfig  # noqa: E402
from m6_pipeline.training.config import OptimizerConfig, PluginConfig  # noqa: E402
from m6_pipeline.training.plugins import CUDA_ONLY, make_plugin  # noqa: E402

PLUGINS = ("torch_ddp", "gemini", "low_level_zero", "hybrid_parallel", "moe_hybrid_parallel")
# a norm computed in fp32 from bf16-rounded gradients may exceed max_norm by a rounding error
NORM_TOLERANCE = 1e-2


class PluginRun(BaseModel):
    """What one plugin check runs: the plugin, a small M6, the optimizer and the batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plugin: PluginConfig
    model: M6Config
    optimizer: OptimizerConfig
    steps: int = Field(10, ge=2, description="optimizer steps on the same batch")
    batch_size: int = Field(8, ge=1)
    seq: int = Field(64, ge=2, description="positions per sequence")
    device: Literal["cuda", "cpu"] = "cuda"
    precision: Literal["bf16", "fp32"] = "bf16"

    @property
    def max_norm(self) -> float:
        return self.optimizer.grad_clip

    @model_validator(mode="after")
    def _runnable(self) -> PluginRun:
        if self.device == "cpu" and self.plugin.name in CUDA_ONLY:
            raise ValueError(
                f"plugin {self.plugin.name!r} needs CUDA; on CPU only torch_ddp runs "
                "(--plugin torch_ddp --device cpu)"
            )
        if self.seq <= self.model.n_patches + 1:
            raise ValueError(f"--seq {self.seq} leaves no text after {self.model.n_patches} image patches; raise --seq")
        return self


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", choices=PLUGINS, required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--max-norm", type=float, default=0.1, help="gradient clipping norm")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--zero-stage", type=int, default=None, help="ZeRO stage; the plugin config's default")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--output", type=Path, default=None, help="JSON result path")
    parser.add_argument("--dry-run", action="store_true", help="parse, import, build the configs; no CUDA")
    return parser.parse_args(argv)


def run_settings(args: argparse.Namespace) -> PluginRun:
    """The typed settings of a run; an MoE model (4 experts in every other block) for the MoE plugin."""
    moe = MoEConfig(n_experts=4, every=2) if args.plugin == "moe_hybrid_parallel" else None
    plugin = {"name": args.plugin, "tp_size": 1, "ep_size": 1}
    if args.zero_stage is not None:
        plugin["zero_stage"] = args.zero_stage
    return PluginRun(
        plugin=PluginConfig(**plugin),
        model=M6Config.of_size("tiny", vocab_size=512, max_positions=args.seq, dropout=0.0, moe=moe),
        # ColossalAI's MoE optimizer clips experts with the dense gradients (training/clipping.py)
        optimizer=OptimizerConfig(lr=args.lr, grad_clip=args.max_norm, weight_decay=0.0,
                                  expert_clipping="with_dense" if moe else "local"),
        steps=args.steps, batch_size=args.batch, seq=args.seq, device=args.device, precision=args.precision,
    )


def default_output(plugin: str) -> Path:
    name = f"gpu_plugin_{plugin}.json"
    out = os.environ.get("OUT")
    return Path(out) / name if out else ROOT / "benchmarks" / "results" / name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SteppedNorm:
    """The L2 norm of the gradients an optimizer steps with, taken by a step pre-hook; divided by
    the `div_scale` keyword Gemini passes its fused Adam (which scales inside the kernel)."""

    def __init__(self, optimizer) -> None:
        self.value: float | None = None
        self.div_scale: float | None = None
        optimizer.register_step_pre_hook(self._hook)

    def _hook(self, optimizer, args, kwargs) -> None:
        import torch

        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = _norm(grads)
        scale = kwargs.get("div_scale", -1)
        self.div_scale = float(scale) if scale and scale > 0 else None
        self.value = norm / self.div_scale if norm is not None and self.div_scale else norm


def _norm(grads) -> float | None:
    """The L2 norm of all the gradients together, in fp32; None when there are none."""
    import torch

    if not grads:
        return None
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])))


def _parameter_grad_norm(model) -> float | None:
    return _norm([p.grad for p in model.parameters() if p.grad is not None])


def _optimizer(settings: PluginRun, model):
    """The training loop's own choice (HybridAdam under gemini, fused AdamW elsewhere)."""
    from m6_pipeline.training.optimizers import make_optimizer

    return make_optimizer(model, settings.optimizer, plugin=settings.plugin.name, precision="bf16")


def _batch(settings: PluginRun, device):
    """An image-text batch: patch features in the first n_patches positions (the bidirectional
    prefix, as in M6's pretraining), then text with next-token labels. Every parameter takes
    part (Gemini refuses a backward that leaves a fetched parameter without a gradient)."""
    import torch

    from m6_pipeline.model.m6 import IGNORE_INDEX
    from m6_pipeline.model.masking import IMAGE, TARGET_TEXT

    config, batch, seq = settings.model, settings.batch_size, settings.seq
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, config.vocab_size, (batch, seq), generator=generator)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, config.n_patches:-1] = ids[:, config.n_patches + 1:]
    segments = torch.full_like(ids, TARGET_TEXT)
    segments[:, : config.n_patches] = IMAGE
    tensors = {
        "input_ids": ids, "segment_ids": segments, "labels": labels,
        "prefix_lengths": torch.full((batch,), config.n_patches, dtype=torch.long),
        "lengths": torch.full((batch,), seq, dtype=torch.long),
        "patch_features": torch.randn(batch, config.n_patches, config.d_patch_feature, generator=generator),
    }
    return {k: v.to(device) for k, v in tensors.items()}


def train(settings: PluginRun) -> dict:
    """The run, under an initialised process group of one; returns the per-step record."""
    import torch
    from colossalai.booster import Booster

    from m6_pipeline.model.moe import ExpertParallel
    from m6_pipeline.training.lazy_init import build_model, builds_lazily
    from m6_pipeline.training.plugins import autocast_dtype

    device = torch.device(settings.device)
    plugin = make_plugin(settings.plugin, use_gpu=settings.device == "cuda", precision=settings.precision,
                         model=settings.model, optimizer=settings.optimizer)
    # the MoE plugin finds expert parameters by the ep group they are tagged with (training/loop.py)
    expert_parallel = ExpertParallel.of(plugin.ep_group) if hasattr(plugin, "ep_group") else None
    # as the training loop builds it: lazily under the sharding plugins, materialised by the Booster
    model = build_model(settings.model, settings.plugin.name, seed=0, expert_parallel=expert_parallel)
    if not builds_lazily(settings.plugin.name):
        model = model.to(device)
    model.embeddings.idle_patch_projection_gets_gradient = settings.plugin.name == "gemini"
    inner = _optimizer(settings, model)
    stepped = SteppedNorm(inner)
    model, optimizer, *_ = Booster(plugin=plugin).boost(model, inner)
    dtype = autocast_dtype(settings.plugin, settings.precision)
    batch = _batch(settings, device)
    clipped_here = settings.plugin.name not in CUDA_ONLY  # the ZeRO plugins clip inside step()
    steps, pre_sources = [], set()
    for step in range(settings.steps):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch)
        optimizer.backward(loss)
        pre = _parameter_grad_norm(model.unwrap())  # None where the plugin keeps them elsewhere
        pre_sources.add("parameter gradients after backward" if pre is not None
                        else "the plugin optimizer's get_grad_norm()")
        if clipped_here:
            optimizer.clip_grad_by_norm(settings.max_norm)  # as the training loop does
        optimizer.step()
        if pre is None:
            reported = optimizer.get_grad_norm()
            pre = float(reported) if reported is not None else None
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize()
        steps.append({
            "step": step, "loss": loss.item(), "pre_clip_norm": pre, "post_clip_norm": stepped.value,
            "div_scale": stepped.div_scale, "seconds": time.perf_counter() - started,
        })
    return {
        "steps": steps,
        "pre_clip_source": " / ".join(sorted(pre_sources)),
        "post_clip_source": "gradients the inner optimizer stepped with (step pre-hook)"
        + (", divided by Gemini's div_scale" if settings.plugin.name == "gemini" else ""),
        "clipped_by": "this script: optimizer.clip_grad_by_norm" if clipped_here else "the plugin",
        "model_build": "lazy" if builds_lazily(settings.plugin.name) else "eager",
        "optimizer": type(inner).__name__,
        "plugin_class": type(plugin).__name__,
    }


def checks(settings: PluginRun, record: dict) -> dict:
    """loss_falls: the last loss below the first; post_clip_within_max_norm: every step's
    post-clip norm <= max_norm (+1%); clipping_engaged: some pre-clip norm above max_norm (else
    clipping was never tested); plugin_clipped: that happened under the plugin's own clipping.
    `failures` says in words what failed and where to look."""
    steps = record["steps"]
    bound = settings.max_norm * (1 + NORM_TOLERANCE)
    post = [s["post_clip_norm"] for s in steps]
    pre = [s["pre_clip_norm"] for s in steps]
    within = all(p is not None and math.isfinite(p) and p <= bound for p in post)
    engaged = any(p is not None and p > bound for p in pre)
    result = {
        "loss_falls": steps[-1]["loss"] < steps[0]["loss"],
        "post_clip_within_max_norm": within,
        "clipping_engaged": engaged,
        "plugin_clipped": record["clipped_by"] == "the plugin" and within and engaged,
    }
    failures = []
    if not result["loss_falls"]:
        failures.append(f"loss did not fall: {steps[0]['loss']:.4f} -> {steps[-1]['loss']:.4f}")
    if not within:
        failures.append(f"post-clip norms {post} exceed max_norm {settings.max_norm}")
    if not engaged:
        failures.append(f"no pre-clip norm exceeded max_norm {settings.max_norm} (pre-clip norms {pre}): "
                        "clipping was not tested; lower --max-norm")
    return {**result, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = run_settings(args)
    except ValueError as error:
        print(f"gpu_plugins.py: {error}", file=sys.stderr)
        return 2
    if args.dry_run:  # the plugin classes' imports are gpu_deps.py's to check (about 20 s)
        from importlib.metadata import version

        from m6_pipeline.training.clipping import clip_plan

        plan = clip_plan(settings.plugin, settings.optimizer, precision=settings.precision,
                         moe=settings.model.moe is not None)

        print(f"dry run: {settings.plugin.name} on {settings.device}, M6 d_model {settings.model.d_model} "
              f"x {settings.model.n_layers} layers{' MoE' if settings.model.moe else ''}, {settings.steps} steps, "
              f"max_norm {settings.max_norm}, clipped by the {plan.owner}; "
              f"colossalai {version('colossalai')}; no CUDA touched")
        return 0
    import colossalai
    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_plugins.py: torch {torch.__version__} sees no CUDA GPU; on CPU run "
              "--plugin torch_ddp --device cpu", file=sys.stderr)
        return 2
    os.environ.setdefault("LOCAL_RANK", "0")
    colossalai.launch(rank=0, world_size=1, host="127.0.0.1", port=_free_port(), local_rank=0, verbose=False)
    started = time.perf_counter()
    record = train(settings)
    result = {
        "plugin": settings.plugin.model_dump(), "device": settings.device,
        "device_name": torch.cuda.get_device_name() if settings.device == "cuda" else "cpu",
        "torch": torch.__version__, "colossalai": colossalai.__version__, "precision": settings.precision,
        "max_norm": settings.max_norm, "model": settings.model.model_dump(mode="json"),
        "seconds": time.perf_counter() - started, **record,
    }
    result["checks"] = checks(settings, record)
    result["passed"] = not result["checks"]["failures"]
    output = args.output or default_output(settings.plugin.name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    losses = [s["loss"] for s in record["steps"]]
    print(f"{settings.plugin.name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, post-clip norm max "
          f"{max(s['post_clip_norm'] or math.inf for s in record['steps']):.4f} (max_norm {settings.max_norm}); "
          f"{'passed' if result['passed'] else 'FAILED: ' + '; '.join(result['checks']['failures'])}")
    print(f"wrote {output}")
    torch.distributed.destroy_process_group()
    return 0 if result["passed"] else 3


if __name__ == "__main__":
    sys.exit(main())
