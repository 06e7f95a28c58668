"""What a pretraining run reports: per-task validation loss against honest baselines, the loss
curves, and sample generations from the trained model."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from m6_pipeline.model.generation import Sampling, generate
from m6_pipeline.model.m6 import M6Model
from m6_pipeline.pretraining.batches import TaskMix, validation_batches
from m6_pipeline.pretraining.stream import ShardStream
from m6_pipeline.storage import location
from m6_pipeline.pretraining.tasks import SpecialTokens
from m6_pipeline.tokenization.wordpiece import detokenize


def unigram_entropy(shard_dir: str | Path, max_rows: int = 20000) -> float:
    """Entropy (nats per token) of the held-out text's unigram distribution: what a model that
    ignores all context would score at best, a baseline below ln(V)."""
    stream = ShardStream(location(shard_dir) / "text", "val", seed=0, shuffle=False)
    counts: Counter[int] = Counter()
    for row in stream.take(0, min(max_rows, len(stream))):
        counts.update(row["token_ids"])
    total = sum(counts.values())
    p = np.array(list(counts.values()), dtype=float) / total
    return float(-(p * np.log(p)).sum())


def train_summary(state: dict, *, vocab_size: int, unigram: float, seconds: float) -> dict:
    """Per task: val_loss_initial, val_loss_final, the relative fall, and negative log perplexity
    (the paper's figure), beside the baselines ln(V) and the unigram entropy."""
    first, last = state["validation"][0], state["validation"][-1]
    tasks = {}
    for task in (k for k in first if k != "step"):
        initial, final = first[task], last[task]
        tasks[task] = {
            "val_loss_initial": initial,
            "val_loss_final": final,
            "fall": (initial - final) / initial,
            "neg_log_perplexity_final": -final,
        }
    rates = [h["tokens_per_s"] for h in state["history"] if "tokens_per_s" in h]
    return {
        "tasks": tasks,
        "baselines": {"uniform_ln_vocab": math.log(vocab_size), "unigram_entropy": unigram},
        "steps": state["step"],
        "resumed_at": state.get("resumed_at", []),
        "tokens_per_s_median": float(np.median(rates)) if rates else None,
        "wall_seconds": seconds,
        "precision": state.get("precision"),
        "validation": state["validation"],
        **({"moe": moe_summary(state)} if "expert_load" in state else {}),
    }


def moe_summary(state: dict, warmup_fraction: float = 0.1) -> dict:
    """The MoE layers over training: drop rate and router losses per logging window, the drop
    rate after warm-up (the first `warmup_fraction` of the steps), and per-expert load."""
    history = state["history"]
    after = [h for h in history if h["step"] >= warmup_fraction * state["step"]]
    window = max(1, len(history) // 50)
    over_time = [
        {
            "step": chunk[-1]["step"] + 1,
            "drop_rate": float(np.mean([h["drop_rate"] for h in chunk])),
            "aux_loss": float(np.mean([h["aux_loss"] for h in chunk])),
            "z_loss": float(np.mean([h["z_loss"] for h in chunk])),
        }
        for chunk in (history[i : i + window] for i in range(0, len(history), window))
    ]
    last_quarter = [h["drop_rate"] for h in history if h["step"] >= 0.75 * state["step"]]
    return {
        "drop_rate_after_warmup": float(np.mean([h["drop_rate"] for h in after])),
        "drop_rate_last_quarter": float(np.mean(last_quarter)) if last_quarter else None,
        "drop_rate_after_warmup_p95": float(np.percentile([h["drop_rate"] for h in after], 95)),
        "warmup_steps_excluded": int(warmup_fraction * state["step"]),
        "aux_loss_final_window": over_time[-1]["aux_loss"],
        "over_time": over_time,
        "expert_load": state["expert_load"],
    }


def loss_curve_figure(state: dict, summary: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    moe = summary.get("moe")
    fig, axes = plt.subplots(1, 4 if moe else 2, figsize=(22 if moe else 11, 4))
    train_ax, val_ax = axes[0], axes[1]
    by_task: dict[str, list[tuple[int, float]]] = {}
    for h in state["history"]:
        by_task.setdefault(h["task"], []).append((h["step"], h["loss"]))
    for task, points in by_task.items():
        steps, losses = zip(*points, strict=True)
        window = max(1, len(losses) // 50)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        train_ax.plot(steps[window - 1 :], smooth, label=task)
    steps = [v["step"] for v in state["validation"]]
    for task in summary["tasks"]:
        val_ax.plot(steps, [v[task] for v in state["validation"]], marker="o", label=task)
    for ax in (train_ax, val_ax):
        ax.axhline(summary["baselines"]["uniform_ln_vocab"], color="grey", ls="--", lw=0.8)
        ax.axhline(summary["baselines"]["unigram_entropy"], color="grey", ls=":", lw=0.8)
        ax.set_xlabel("step")
        ax.set_ylabel("nats per target token")
        ax.legend(fontsize=7)
    train_ax.set_title("training loss (moving mean)")
    val_ax.set_title("validation loss (dashed ln V, dotted unigram entropy)")
    if moe:
        _moe_panels(axes[2], axes[3], moe)
    fig.tight_layout()
    return fig


def _moe_panels(routing_ax, load_ax, moe: dict) -> None:
    steps = [w["step"] for w in moe["over_time"]]
    routing_ax.plot(steps, [w["drop_rate"] for w in moe["over_time"]], label="drop rate")
    routing_ax.set_ylabel("share of assignments dropped")
    aux_ax = routing_ax.twinx()
    aux_ax.plot(steps, [w["aux_loss"] for w in moe["over_time"]], color="C1", label="aux loss")
    aux_ax.set_ylabel("load-balancing loss (1 = balanced)")
    routing_ax.set_xlabel("step")
    routing_ax.set_title("MoE routing: drop rate (blue), aux loss (orange)")
    last = moe["expert_load"][-1]
    image = load_ax.imshow(np.array(last["share"]) * len(last["share"][0]), aspect="auto", cmap="viridis")
    load_ax.set_xlabel("expert")
    load_ax.set_yticks(range(len(last["share"])))
    load_ax.set_ylabel("MoE layer")
    load_ax.set_title(f"expert load / even share, steps before {last['step']}")
    load_ax.figure.colorbar(image, ax=load_ax)


def sample_generations(
    model: M6Model, tokenizer, shard_dir: Path, special: SpecialTokens, mix: TaskMix,
    *, per_task: int, max_new_tokens: int, seed: int = 0,
) -> dict[str, list[dict]]:
    """Greedy decodings of held-out examples for each task, beside the reference text."""
    out: dict[str, list[dict]] = {}
    for task in mix.active_tasks:
        batches = validation_batches(
            shard_dir, task, special, mix, n_examples=per_task, batch_size=per_task,
            rank=0, world_size=1, seed=seed,
        )
        if not batches:
            continue
        batch = batches[0]
        prefix_len = int(batch["prefix_lengths"].max())
        generated = generate(
            model, batch["input_ids"][:, :prefix_len], batch["segment_ids"][:, :prefix_len],
            batch["prefix_lengths"], bos_id=special.bos, eos_id=special.eos,
            max_new_tokens=max_new_tokens, patch_features=batch.get("patch_features"),
            sampling=Sampling("greedy"), generator=torch.Generator().manual_seed(seed),
        )
        rows = []
        for i, ids in enumerate(generated):
            start = int(batch["prefix_lengths"][i])
            n_patches = 0 if "patch_features" not in batch else batch["patch_features"].shape[1]
            prefix_ids = batch["input_ids"][i, n_patches:start].tolist()
            reference = batch["input_ids"][i, start + 1 : int(batch["lengths"][i]) - 1].tolist()
            rows.append({
                "prefix": detokenize(tokenizer, prefix_ids, skip_special_tokens=False),
                "reference": detokenize(tokenizer, reference),
                "generated": detokenize(tokenizer, ids),
            })
        out[task] = rows
    return out
