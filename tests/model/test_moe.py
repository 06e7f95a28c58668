"""The MoE layer: routing and capacity arithmetic, dropped tokens through the residual, the
auxiliary losses on hand-computed inputs, grouped experts equal to a per-expert loop, padding
left unrouted, and the M6-100B parameter count."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model import PAPER_PARAMS, M6Config, M6Model, count_parameters
from m6_pipeline.model.blocks import Block
from m6_pipeline.model.moe import (
    MoEConfig,
    MoELayer,
    capacity,
    grouped_ffn,
    per_expert_loop_ffn,
    route,
    sinkhorn,
)


def layer(n_experts=4, top_k=1, capacity_factor=1.25, d=16, f=32, seed=0, **kw) -> MoELayer:
    torch.manual_seed(seed)
    config = MoEConfig(n_experts=n_experts, top_k=top_k, capacity_factor=capacity_factor, min_capacity=1, **kw)
    return MoELayer(d, f, config, init_std=0.3, output_std=0.3)


def test_100b_counts_within_5_percent_of_the_paper():
    n = count_parameters(M6Config.of_size("100b"))
    assert abs(n / PAPER_PARAMS["100b"] - 1) < 0.05, n


def test_moe_in_every_other_block():
    model = M6Model(M6Config.of_size("tiny", n_layers=4, vocab_size=50, moe={"n_experts": 4}))
    assert [isinstance(b.ffn, MoELayer) for b in model.blocks] == [False, True, False, True]


@pytest.mark.parametrize(("n", "k", "c", "expected"), [(100, 1, 1.25, 32), (100, 2, 1.25, 63), (8, 1, 1.0, 4), (3, 1, 1.0, 4)])
def test_capacity_is_k_n_c_over_m_with_a_floor(n, k, c, expected):
    config = MoEConfig(n_experts=4, top_k=k, capacity_factor=c, min_capacity=4)
    assert capacity(n, config, training=True) == expected


def test_route_keeps_first_choices_before_second_choices_and_drops_the_rest():
    # 4 tokens, 2 experts, top-2, capacity 3: expert 0 is every token's first choice
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    r = route(logits, top_k=2, expert_capacity=3)
    assert r.load.tolist() == [4, 4]
    assert r.counts.tolist() == [3, 3]
    assert r.n_dropped == 2
    # sorted by expert, token order within each: token 3 lost its first choice, kept its second
    assert r.token.tolist() == [0, 1, 2, 0, 1, 2]
    p = torch.softmax(torch.tensor([2.0, 0.0]), 0)
    assert torch.allclose(r.weight, torch.tensor([p[0]] * 3 + [p[1]] * 3))


def test_aux_and_z_loss_on_hand_computed_inputs():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    r = route(logits, top_k=1, expert_capacity=4)
    # both tokens pick expert 0: f = [1, 0]; mean probabilities P = [0.625, 0.375]
    assert r.aux_loss.item() == pytest.approx(2 * (1.0 * 0.625))
    assert r.z_loss.item() == pytest.approx((math.log(4.0) ** 2 + math.log(2.0) ** 2) / 2)
    balanced = route(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), top_k=1, expert_capacity=4)
    assert balanced.aux_loss.item() == pytest.approx(1.0)  # perfect balance scores 1


def test_dropped_tokens_pass_through_the_block_unchanged():
    config = M6Config.of_size("tiny", d_model=16, n_heads=2, vocab_size=50, dropout=0.0,
                              moe={"n_experts": 2, "capacity_factor": 0.25, "min_capacity": 1})
    torch.manual_seed(0)
    moe = MoELayer(16, 64, config.moe, init_std=0.3, output_std=0.3)
    x = torch.randn(1, 12, 16)
    out = moe(x)
    dropped = out[0].abs().sum(-1) == 0
    assert moe.statistics.n_dropped == int(dropped.sum()) > 0
    assert (~dropped).sum() == sum(min(n, 2) for n in moe.statistics.load.int().tolist())
    # in the block, a dropped token's FFN sublayer adds nothing: it leaves as x + 0
    block = Block(config, moe)
    block.attention.proj.weight.data.zero_()
    block.attention.proj.bias.data.zero_()  # isolate the FFN sublayer
    seen = []
    moe.register_forward_hook(lambda module, args, output: seen.append(output))
    y, _ = block(x, torch.ones(1, 1, 12, 12, dtype=torch.bool))
    dropped = seen[0][0].abs().sum(-1) == 0
    assert dropped.sum() == moe.statistics.n_dropped > 0
    assert torch.equal(y[0][dropped], x[0][dropped])
    assert not torch.allclose(y[0][~dropped], x[0][~dropped])


def test_top2_output_is_the_probability_weighted_sum_of_two_experts():
    moe = layer(n_experts=4, top_k=2, capacity_factor=4.0)
    x = torch.randn(1, 5, 16)
    out = moe(x)[0]
    probs = torch.softmax(x[0] @ moe.gate.weight.T, -1)
    top_p, top_e = probs.topk(2, -1)
    for t in range(5):
        expected = sum(
            top_p[t, j] * per_expert_loop_ffn(x[0, t:t + 1], torch.tensor([1]), moe.w1[e:e + 1], moe.b1[e:e + 1],
                                              moe.w2[e:e + 1], moe.b2[e:e + 1])[0]
            for j, e in enumerate(top_e[t].tolist())
        )
        assert torch.allclose(out[t], expected, atol=1e-5)


def test_padding_is_not_routed():
    moe = layer(n_experts=4, top_k=2, capacity_factor=4.0)
    x = torch.randn(2, 6, 16)
    token_mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    out = moe(x, token_mask)
    assert moe.statistics.load.sum() == 8 * 2
    assert torch.equal(out[1, 2:], torch.zeros(4, 16))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=6), st.integers(0, 1000))
def test_grouped_experts_equal_the_per_expert_loop(counts, seed):
    g = torch.Generator().manual_seed(seed)
    e, d, f = len(counts), 8, 16
    counts = torch.tensor(counts)
    weights = [torch.randn(e, d, f, generator=g), torch.randn(e, f, generator=g),
               torch.randn(e, f, d, generator=g), torch.randn(e, d, generator=g)]
    weights = [w.requires_grad_() for w in weights]
    h = torch.randn(int(counts.sum()), d, generator=g, requires_grad=True)
    upstream = torch.randn(int(counts.sum()), d, generator=g)
    grouped = grouped_ffn(h, counts, *weights)
    grads = torch.autograd.grad((grouped * upstream).sum(), [h, *weights], allow_unused=True)
    loop = per_expert_loop_ffn(h, counts, *weights)
    loop_grads = torch.autograd.grad((loop * upstream).sum(), [h, *weights], allow_unused=True)
    assert torch.allclose(grouped, loop, atol=1e-4, rtol=1e-4)
    for a, b in zip(grads, loop_grads):
        b = torch.zeros_like(a) if b is None else b
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-4)


def test_router_losses_join_the_training_loss_only():
    config = M6Config.of_size("tiny", vocab_size=50, max_positions=16, dropout=0.0,
                              moe={"n_experts": 4, "aux_loss_weight": 0.1, "z_loss_weight": 0.01})
    torch.manual_seed(0)
    model = M6Model(config)
    ids = torch.randint(7, 50, (2, 10))
    batch = dict(input_ids=ids, segment_ids=torch.zeros_like(ids), prefix_lengths=torch.tensor([3, 3]),
                 lengths=torch.tensor([10, 7]), labels=ids)
    loss = model(**batch)
    parts = model.last_losses
    assert loss.item() == pytest.approx(parts["lm"] + 0.1 * parts["aux"] + 0.01 * parts["z"], rel=1e-5)
    assert model.eval()(**batch).item() == pytest.approx(model.last_losses["lm"])
    loss.backward()
    assert model.blocks[1].ffn.gate.weight.grad.abs().sum() > 0


def test_sinkhorn_balances_the_soft_load_and_keeps_preferences():
    logits = torch.randn(64, 4) + torch.tensor([3.0, 0.0, 0.0, 0.0])  # expert 0 favoured by all
    balanced = route(logits, top_k=1, expert_capacity=64, selection="sinkhorn")
    plain = route(logits, top_k=1, expert_capacity=64)
    assert plain.load[0] > 48 and balanced.load.max() < plain.load.max()
    scores = sinkhorn(logits)
    assert torch.allclose(scores.sum(0), torch.full((4,), 1 / 4), atol=1e-3)
    # the weights stay the softmax probabilities of the chosen experts
    chosen = torch.softmax(logits, -1)
    assert torch.allclose(balanced.weight.sort().values,
                          chosen[balanced.token, torch.repeat_interleave(torch.arange(4), balanced.counts)].sort().values)


def test_sampled_selection_spreads_identical_tokens():
    logits = torch.zeros(400, 8)  # every token alike: the gate's top-1 sends all to one expert
    assert route(logits, 1, 400).load.max() == 400
    sampled = route(logits, 1, 400, selection="sample")
    assert sampled.load.max() < 100 and sampled.load.min() > 20


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.floats(-5.0, 5.0))
def test_centred_gate_ignores_what_every_token_of_the_batch_shares(seed, shift):
    """With router_centering the gate scores x - mean(x): adding one vector to every token of a
    batch (the shared component that sends a batch to one expert) changes no routing."""
    moe = layer(n_experts=8, capacity_factor=2.0, router_centering=True).train()
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 12, 16, generator=generator)
    common = shift * torch.randn(16, generator=generator)
    moe(x)
    load = moe.statistics.load.clone()
    moe(x + common)
    assert torch.equal(moe.statistics.load, load)


def test_centred_gate_uses_a_running_mean_outside_training():
    moe = layer(n_experts=8, router_centering=True, centering_momentum=0.5)
    assert torch.equal(moe.router_mean, torch.zeros(16)) and "router_mean" in moe.state_dict()
    x = torch.randn(3, 5, 16) + 2.0
    moe.train()(x)
    assert torch.allclose(moe.router_mean, 0.5 * x.reshape(-1, 16).mean(0))
    before = moe.router_mean.clone()
    moe.eval()(x)  # evaluation reads the running mean and leaves it alone
    assert torch.equal(moe.router_mean, before)
    tokens = x.reshape(-1, 16)
    expected = route(torch.nn.functional.linear(tokens - before, moe.gate.weight), 1,
                     capacity(tokens.shape[0], moe.config, training=False))
    assert torch.equal(moe.statistics.load, expected.load.float())


def test_the_paper_gate_scores_the_tokens_themselves():
    moe = layer(n_experts=8).train()
    assert not hasattr(moe, "router_mean")
    x = torch.randn(2, 6, 16)
    moe(x)
    expected = route(torch.nn.functional.linear(x.reshape(-1, 16), moe.gate.weight), 1,
                     capacity(12, moe.config, training=True))
    assert torch.equal(moe.statistics.load, expected.load.float())
