"""The Mixture-of-Experts feed-forward layer of M6-100B (§3.4, equations (1)-(2)).

A gate g(x) scores every expert; p(x) = softmax(g(x)); each token goes to the experts T of its
top-k scores and its output is sum_{i in T} p_i(x) E_i(x). Each expert takes at most
C = ceil(k * N * c / m) assignments from a batch of N tokens (m experts, capacity factor c; with
top-1 this is the paper's C = N*c/m). An assignment over capacity is dropped: its token skips
that expert and reaches the next layer through the residual connection alone.

Experts run as two grouped matrix products over the assignments sorted by expert
(`torch.nn.functional.grouped_mm`), never a Python loop per expert. Under expert parallelism the
experts are sharded over a process group: the sorted assignments go to the rank that holds
their expert and come back through `all_to_all_single`, optionally in bf16/fp16.

Beyond the paper, `router_centering` lets the gate score x minus the batch's mean token (a
running mean in evaluation and generation). In a small model one batch's hidden states share
much of their direction (segment embedding, attention averages), and that shared part adds the
same bias to every token's logits: the gate then sends most of a batch to a few experts, over
capacity, whatever the load-balancing loss says. Centring removes exactly that part, so routing
is invariant to it (tested), and the Switch loss can balance what remains.

ColossalAI's MoE has no capacity and no dropping, hence this layer; its MoE plugin still finds
the expert parameters through the `ep_group` tag set here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

COMM_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# torch 2.13 points to a private module (_functional_collectives) instead; the public autograd
# all-to-all still works and is what we use
warnings.filterwarnings("ignore", message=".*all_to_all_single is deprecated", category=FutureWarning)


class MoEConfig(BaseModel):
    """The MoE feed-forward of M6-100B. Defaults are the paper's (top-1, every other block)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_experts: int = Field(1024, ge=1, description="experts per MoE layer (m)")
    top_k: Literal[1, 2] = Field(1, description="experts per token; the paper compares 1 and 2")
    capacity_factor: float = Field(1.25, gt=0, description="c in C = k*N*c/m while training")
    eval_capacity_factor: float = Field(2.0, gt=0, description="c in evaluation and generation")
    min_capacity: int = Field(4, ge=1, description="capacity floor for tiny batches (generation)")
    every: int = Field(2, ge=1, description="the FFN of every `every`-th block is MoE")
    d_expert: int | None = Field(None, description="hidden width of an expert; the FFN's when omitted")
    aux_loss_weight: float = Field(0.01, ge=0, description="Switch load-balancing loss weight")
    train_selection: Literal["softmax", "sinkhorn", "sample"] = Field(
        "softmax",
        description="how training picks each token's experts: the gate's top-k (the paper), or "
        "the top-k of the gate's scores balanced over the batch by Sinkhorn iterations (as "
        "Megatron-LM's sinkhorn router); the output is scaled by the softmax p_i(x) either way, "
        "and evaluation and generation always take the gate's top-k",
    )
    z_loss_weight: float = Field(0.0, ge=0, description="router z-loss weight (ST-MoE); 0 = off")
    router_centering: bool = Field(
        False,
        description="the gate scores x minus the batch's mean token (a running mean in evaluation "
        "and generation): the component every token of a batch shares then adds no common bias "
        "that sends the whole batch to one expert",
    )
    centering_momentum: float = Field(0.01, gt=0, le=1, description="update rate of the running mean")
    comm_dtype: Literal["bf16", "fp16"] | None = Field(
        None, description="all-to-all payload dtype under expert parallelism; None = compute dtype"
    )

    @model_validator(mode="after")
    def _k_fits(self) -> MoEConfig:
        if self.top_k > self.n_experts:
            raise ValueError(f"top_k={self.top_k} needs at least as many experts (n_experts={self.n_experts})")
        return self

    def is_moe_block(self, index: int) -> bool:
        """Blocks every-1, 2*every-1, ...: with every=2, the second block of each pair."""
        return index % self.every == self.every - 1


def capacity(n_tokens: int, config: MoEConfig, training: bool) -> int:
    """Assignments one expert accepts from a batch of n_tokens: ceil(k * N * c / m)."""
    factor = config.capacity_factor if training else config.eval_capacity_factor
    return max(config.min_capacity, math.ceil(config.top_k * n_tokens * factor / config.n_experts))


@dataclass(frozen=True)
class Routing:
    """The kept assignments of a batch, sorted by expert (first choices before second choices,
    then token order, within each expert)."""

    token: torch.Tensor  # [A] token index of each kept assignment
    weight: torch.Tensor  # [A] its gate probability p_i(x) (differentiable)
    counts: torch.Tensor  # [m] kept assignments per expert
    load: torch.Tensor  # [m] assignments routed to each expert before capacity
    n_dropped: int
    aux_loss: torch.Tensor  # Switch: m * sum_i f_i * P_i (1.0 when perfectly balanced)
    z_loss: torch.Tensor  # mean over tokens of logsumexp(logits)^2


@torch.no_grad()
def sinkhorn(logits: torch.Tensor, iterations: int = 8) -> torch.Tensor:
    """exp(logits) scaled by row and column factors so that every token's row sums to 1/N and
    every expert's column to 1/m: the same preferences with a balanced load. [N, m] in, out."""
    n_tokens, n_experts = logits.shape
    scores = torch.exp(logits - logits.max())
    columns = torch.ones(n_experts, dtype=scores.dtype, device=scores.device)
    for _ in range(iterations):
        rows = (1.0 / n_tokens) / (scores @ columns + 1e-9)
        columns = (1.0 / n_experts) / (rows @ scores + 1e-9)
    return rows.unsqueeze(1) * scores * columns


def route(logits: torch.Tensor, top_k: int, expert_capacity: int, selection: str = "softmax") -> Routing:
    """Top-k routing with capacity. logits: [N, m] router scores in fp32. `selection` picks the
    experts: the gate's top-k, the top-k of Sinkhorn-balanced scores, or k experts sampled from
    p(x) without replacement (Gumbel top-k); the gate values p_i(x) are the softmax's always."""
    n_tokens, n_experts = logits.shape
    probs = logits.softmax(dim=-1)
    if selection != "softmax" and n_tokens:
        if selection == "sinkhorn":
            scores = sinkhorn(logits.detach())
        else:
            uniform = torch.rand_like(logits).clamp(1e-9, 1 - 1e-9)
            scores = logits.detach() - torch.log(-torch.log(uniform))
        top_e = scores.topk(top_k, dim=-1).indices
        top_p = probs.gather(1, top_e)
    else:
        top_p, top_e = probs.topk(top_k, dim=-1)  # [N, k]
    # priority: every token's first choice, then every token's second choice (GShard)
    experts = top_e.T.reshape(-1)
    tokens = torch.arange(n_tokens, device=logits.device).repeat(top_k)
    weights = top_p.T.reshape(-1)
    order = torch.sort(experts, stable=True).indices
    experts, tokens, weights = experts[order], tokens[order], weights[order]
    load = torch.bincount(experts, minlength=n_experts)
    starts = torch.cumsum(load, 0) - load
    position = torch.arange(experts.numel(), device=logits.device) - starts[experts]
    keep = position < expert_capacity
    counts = torch.clamp(load, max=expert_capacity)

    first_choice = F.one_hot(top_e[:, 0], n_experts).float().mean(0) if n_tokens else probs.sum(0)
    aux = n_experts * (first_choice * probs.mean(0)).sum() if n_tokens else logits.sum() * 0
    z = torch.logsumexp(logits, dim=-1).square().mean() if n_tokens else logits.sum() * 0
    return Routing(
        token=tokens[keep], weight=weights[keep], counts=counts, load=load,
        n_dropped=int((~keep).sum()), aux_loss=aux, z_loss=z,
    )


@dataclass(frozen=True)
class ExpertParallel:
    """The process group the experts of every MoE layer are sharded over."""

    group: dist.ProcessGroup | None
    size: int
    rank: int

    @classmethod
    def of(cls, group: dist.ProcessGroup | None) -> ExpertParallel:
        if group is None:
            return cls(None, 1, 0)
        return cls(group, dist.get_world_size(group), dist.get_rank(group))


@dataclass
class MoEStatistics:
    """What the last forward of one MoE layer did (detached, for logging)."""

    load: torch.Tensor  # [m] assignments per expert before capacity
    n_assignments: int
    n_dropped: int
    aux_loss: float
    z_loss: float

    @property
    def drop_rate(self) -> float:
        return self.n_dropped / max(1, self.n_assignments)


def grouped_ffn(
    h: torch.Tensor, counts: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
    approximate: str = "none",
) -> torch.Tensor:
    """Every expert's FFN over its contiguous rows of h (rows sorted by expert): two grouped
    matrix products. h: [A, d]; counts: [E]; w1: [E, d, f]; w2: [E, f, d]; `approximate` is
    `F.gelu`'s ("none": exact GELU, "tanh": GPT-2's)."""
    if h.shape[0] == 0:  # keep every weight in the graph: each gets a zero gradient, not None
        untouched = h.sum() + (w1.sum() + b1.sum() + w2.sum() + b2.sum()).to(h.dtype)
        return h.new_zeros(0, w2.shape[-1]) + untouched * 0
    offsets = torch.cumsum(counts, 0).to(torch.int32)
    hidden = F.grouped_mm(h, w1, offs=offsets) + torch.repeat_interleave(b1, counts, dim=0, output_size=h.shape[0])
    hidden = F.gelu(hidden, approximate=approximate)
    return F.grouped_mm(hidden, w2, offs=offsets) + torch.repeat_interleave(
        b2, counts, dim=0, output_size=h.shape[0]
    )


def per_expert_loop_ffn(
    h: torch.Tensor, counts: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
    approximate: str = "none",
) -> torch.Tensor:
    """The same computation as `grouped_ffn` as a Python loop over experts: the reference the
    tests compare against and the naive baseline of benchmarks/moe_layer.py."""
    outputs, start = [], 0
    for e, n in enumerate(counts.tolist()):
        rows = h[start : start + n]
        outputs.append(F.gelu(rows @ w1[e] + b1[e], approximate=approximate) @ w2[e] + b2[e])
        start += n
    return torch.cat(outputs) if outputs else h.new_zeros(0, w2.shape[-1])


class MoELayer(nn.Module):
    """Drop-in replacement of the FFN of a block: forward(x [batch, seq, d], token_mask)."""

    def __init__(
        self, d_model: int, d_ffn: int, config: MoEConfig, *, init_std: float, output_std: float,
        dropout: float = 0.0, expert_parallel: ExpertParallel | None = None, approximate: str = "none",
        seed: int | None = None,
    ) -> None:
        """approximate: `F.gelu`'s, as M6Config.gelu_approximate gives it. seed: of the experts'
        weights (None: one draw from torch's global generator)."""
        super().__init__()
        ep = expert_parallel or ExpertParallel(None, 1, 0)
        if config.n_experts % ep.size:
            raise ValueError(
                f"n_experts={config.n_experts} does not split over {ep.size} expert-parallel ranks; "
                "choose an expert-parallel size that divides the number of experts"
            )
        for name, width in (("d_model", d_model), ("expert width", d_ffn)):
            if width % 8:
                raise ValueError(f"{name}={width} must be a multiple of 8 for grouped matrix products")
        self.config = config
        self.ep = ep
        self.n_local = config.n_experts // ep.size
        self.first_expert = ep.rank * self.n_local
        self.gate = nn.Linear(d_model, config.n_experts, bias=False)
        if config.router_centering:
            self.register_buffer("router_mean", torch.zeros(d_model))
        self.w1 = nn.Parameter(torch.empty(self.n_local, d_model, d_ffn))
        self.b1 = nn.Parameter(torch.zeros(self.n_local, d_ffn))
        self.w2 = nn.Parameter(torch.empty(self.n_local, d_ffn, d_model))
        self.b2 = nn.Parameter(torch.zeros(self.n_local, d_model))
        self.dropout = nn.Dropout(dropout)
        self.approximate = approximate
        self.statistics: MoEStatistics | None = None
        self.router_losses: tuple[torch.Tensor, torch.Tensor] | None = None
        # one seed, then one generator per *global* expert: every expert starts the same
        # whatever the expert-parallel size (EP=2 equals EP=1)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (), device="cpu"))
        self._init_experts(seed, init_std, output_std)
        if ep.group is not None:
            from colossalai.tensor.moe_tensor.api import set_moe_tensor_ep_group

            for parameter in self.expert_parameters():
                set_moe_tensor_ep_group(parameter, ep.group)

    def expert_parameters(self) -> list[nn.Parameter]:
        """Parameters sharded over the expert-parallel group (not replicated across ranks)."""
        return [self.w1, self.b1, self.w2, self.b2]

    @torch.no_grad()
    def _init_experts(self, seed: int, init_std: float, output_std: float) -> None:
        if self.w1.device.type == "meta":  # (a lazy tensor says is_meta but has a device)
            return
        for local in range(self.n_local):
            generator = torch.Generator().manual_seed(seed + self.first_expert + local)
            self.w1[local].normal_(0.0, init_std, generator=generator)
            self.w2[local].normal_(0.0, output_std, generator=generator)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: [batch, seq, d]; token_mask: bool [batch, seq], False for padding (not routed).
        Returns the MoE output; zero for a token whose every assignment was dropped."""
        width = x.shape[-1]
        flat = x.reshape(-1, width)
        index = token_mask.reshape(-1).nonzero().squeeze(1) if token_mask is not None else None
        tokens = flat[index] if index is not None else flat
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(self._router_input(tokens.float()), self.gate.weight.float())
        selection = self.config.train_selection if self.training else "softmax"
        routing = route(logits, self.config.top_k, capacity(tokens.shape[0], self.config, self.training), selection)
        compute = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        dispatched = tokens[routing.token].to(compute)
        expert_out = self._experts(dispatched, routing.counts)
        weighted = expert_out.to(x.dtype) * routing.weight.to(x.dtype).unsqueeze(1)
        combined = tokens.new_zeros(tokens.shape).index_add(0, routing.token, weighted)
        if index is not None:
            combined = flat.new_zeros(flat.shape).index_copy(0, index, combined)
        self._record(routing, tokens.shape[0])
        return self.dropout(combined.view_as(x))

    def _router_input(self, tokens: torch.Tensor) -> torch.Tensor:
        """The gate's input: the tokens, centred on the batch mean if the config says so."""
        if not self.config.router_centering:
            return tokens
        if self.training and tokens.shape[0]:
            mean = tokens.detach().mean(0)
            with torch.no_grad():
                self.router_mean.lerp_(mean, self.config.centering_momentum)
            return tokens - mean
        return tokens - self.router_mean

    def _record(self, routing: Routing, n_tokens: int) -> None:
        self.router_losses = (routing.aux_loss, routing.z_loss)
        self.statistics = MoEStatistics(
            load=routing.load.detach().float(), n_assignments=n_tokens * self.config.top_k,
            n_dropped=routing.n_dropped, aux_loss=float(routing.aux_loss.detach()),
            z_loss=float(routing.z_loss.detach()),
        )

    def _weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return tuple(w.to(dtype) for w in (self.w1, self.b1, self.w2, self.b2))

    def _experts(self, dispatched: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Rows sorted by global expert in, the same rows' expert outputs out."""
        if self.ep.size == 1:
            return grouped_ffn(dispatched, counts, *self._weights(dispatched.dtype), self.approximate)
        return self._experts_parallel(dispatched, counts)

    def _experts_parallel(self, dispatched: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        from torch.distributed.nn.functional import all_to_all_single

        ep, n_local, group = self.ep.size, self.n_local, self.ep.group
        received_counts = torch.empty_like(counts)
        dist.all_to_all_single(received_counts, counts, group=group)  # [source rank, local expert]
        send_splits = counts.view(ep, n_local).sum(1).tolist()
        received_counts = received_counts.view(ep, n_local)
        receive_splits = received_counts.sum(1).tolist()

        compute = dispatched.dtype
        wire = COMM_DTYPES.get(self.config.comm_dtype, compute)
        received = all_to_all_single(
            dispatched.new_empty(sum(receive_splits), dispatched.shape[1], dtype=wire),
            dispatched.to(wire), receive_splits, send_splits, group=group,
        ).to(compute)
        # rows arrive ordered (source rank, local expert); the experts need (local expert, source)
        local_expert = torch.repeat_interleave(
            torch.arange(n_local, device=counts.device).repeat(ep), received_counts.reshape(-1)
        )
        order = torch.sort(local_expert, stable=True).indices
        out = grouped_ffn(received[order], received_counts.sum(0), *self._weights(compute), self.approximate)
        unsorted = torch.empty_like(out).index_copy(0, order, out)
        returned = all_to_all_single(
            dispatched.new_empty(dispatched.shape[0], out.shape[1], dtype=wire),
            unsorted.to(wire), send_splits, receive_splits, group=group,
        )
        return returned.to(compute)
