"""The memory and throughput planner: Table 4's sizes on A100s, the local CPU run, and the
properties a plan must keep (more ZeRO-3 GPUs never cost memory, recomputation never adds
activations)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.model.config import PAPER_PARAMS, M6Config
from m6_pipeline.model.linear_cross_entropy import chunk_rows
from m6_pipeline.training.planner import (
    GIB,
    ClusterSpec,
    PlanDoesNotFit,
    PlanSettings,
    check_fits,
    output_layer_bytes,
    plan,
)

BASE = M6Config.of_size("base")
TEN_B = M6Config.of_size("10b")
LOCAL = M6Config(vocab_size=6000, n_layers=4, d_model=256, n_heads=4, max_positions=128)
A100 = ClusterSpec.of_gpu("A100-80GB", 1)


def test_base_counts_the_papers_327m_and_fits_one_a100_under_ddp():
    p = check_fits(plan(BASE, A100, PlanSettings(plugin="torch_ddp", micro_batch_size=8)))
    assert p.n_params_full == pytest.approx(PAPER_PARAMS["base"], rel=0.03)
    assert p.fits and p.total_bytes < 80 * GIB
    # 6N + 12 L d s per token at 45% of 312 TFLOP/s
    assert p.tokens_per_s * p.model_flops_per_token == pytest.approx(0.45 * 312e12)
    assert p.samples_per_s == pytest.approx(p.tokens_per_s / 512)
    assert p.step_time_s == pytest.approx(8 * 512 / p.tokens_per_s)


def test_10b_under_ddp_does_not_fit_and_the_error_says_what_to_change():
    p = plan(TEN_B, A100, PlanSettings(plugin="torch_ddp", micro_batch_size=2))
    assert p.n_params_full == pytest.approx(PAPER_PARAMS["10b"], rel=0.03)
    assert not p.fits and p.shortfall_bytes > 0
    with pytest.raises(PlanDoesNotFit) as raised:
        check_fits(p)
    message = str(raised.value)
    assert f"short by {p.shortfall_bytes / GIB:.1f} GiB" in message
    assert "gemini" in message and "ZeRO-3" in message
    assert "activation checkpointing" in message and "micro_batch_size 1" in message
    assert "more GPUs" in message


def test_10b_under_gemini_fits_128_a100s():
    cluster = ClusterSpec.of_gpu("A100-80GB", 128)
    p = check_fits(plan(TEN_B, cluster, PlanSettings(plugin="gemini", micro_batch_size=2)))
    assert p.settings.zero_stage == 3 and p.data_parallel_size == 128
    # ZeRO-3: 16 bytes per parameter over 128 ranks
    states = p.parameters_bytes + p.gradients_bytes + p.optimizer_states_bytes
    assert states == pytest.approx(16 * p.n_params_full / 128)



def test_10b_under_tensor_parallelism_shards_the_blocks_not_the_embeddings():
    """hybrid_parallel with tp 8 (M6Policy: attention and FFNs sharded, embeddings and the tied
    output layer whole on every rank) fits 128 A100s without ZeRO-3."""
    cluster = ClusterSpec.of_gpu("A100-80GB", 128)
    p = check_fits(plan(TEN_B, cluster, PlanSettings(plugin="hybrid_parallel", tp_size=8, zero_stage=0,
                                                     micro_batch_size=8)))
    assert p.data_parallel_size == 16
    embeddings = p.n_params_full - p.n_params_non_embedding
    per_rank = p.n_params_non_embedding / 8 + embeddings
    assert p.parameters_bytes == pytest.approx(2 * per_rank)  # bf16 weights
    unsharded = plan(TEN_B, cluster, PlanSettings(plugin="hybrid_parallel", tp_size=1, zero_stage=0,
                                                  micro_batch_size=8))
    assert not unsharded.fits and p.activations_bytes < unsharded.activations_bytes / 4

def test_plan_is_json_and_names_its_parameter_count():
    dumped = plan(BASE, A100, PlanSettings()).model_dump()
    assert json.loads(json.dumps(dumped))["n_params_full"] == dumped["n_params_full"]


def test_local_cpu_plan_for_torch_ddp_workers():
    cluster = ClusterSpec.cpu_host(n_workers=2, host_memory_gib=24)
    p = check_fits(
        plan(
            LOCAL,
            cluster,
            PlanSettings(micro_batch_size=16, seq_len=128, mfu=0.35, runtime_reserved_gib=0.5),
        )
    )
    assert p.device_kind == "cpu" and p.data_parallel_size == 2
    assert p.capacity_bytes == 12 * GIB
    # two workers share the host's 760 GFLOP/s: ~9k tokens/s at 35% (measured here: ~9.8k)
    assert 5_000 < p.tokens_per_s < 15_000
    with pytest.raises(ValueError, match="needs CUDA"):
        plan(LOCAL, cluster, PlanSettings(plugin="gemini", seq_len=128))
    crowded = ClusterSpec.cpu_host(n_workers=2, host_memory_gib=0.5)
    with pytest.raises(PlanDoesNotFit, match="fewer CPU workers"):
        check_fits(plan(LOCAL, crowded, PlanSettings(seq_len=128)))


def test_checkpointing_costs_a_second_forward():
    plain = plan(BASE, A100, PlanSettings())
    ckpt = plan(BASE, A100, PlanSettings(activation_checkpointing=True))
    assert ckpt.activations_bytes < plain.activations_bytes / 5
    assert ckpt.tokens_per_s == pytest.approx(
        plain.tokens_per_s * plain.model_flops_per_token / ckpt.hardware_flops_per_token
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"pp_size": 2},
        {"plugin": "torch_ddp", "tp_size": 2},
        {"plugin": "gemini", "zero_stage": 2},
        {"plugin": "low_level_zero", "zero_stage": 3},
    ],
)
def test_settings_refuse_what_the_plugins_cannot_run(bad):
    with pytest.raises(ValueError):
        PlanSettings(**bad)


def test_plan_refuses_sequences_past_max_positions_and_ragged_tensor_parallel_groups():
    with pytest.raises(ValueError, match="max_positions"):
        plan(BASE, A100, PlanSettings(seq_len=1024))
    with pytest.raises(ValueError, match="tp_size"):
        plan(
            BASE,
            ClusterSpec.of_gpu("H100-80GB", 6),
            PlanSettings(plugin="hybrid_parallel", tp_size=4),
        )


small_configs = st.builds(
    lambda layers, heads, head_dim, vocab: M6Config(
        n_layers=layers,
        n_heads=heads,
        d_model=heads * head_dim,
        vocab_size=vocab,
        max_positions=256,
    ),
    st.integers(1, 6),
    st.sampled_from([1, 2, 4]),
    st.sampled_from([8, 16, 32]),
    st.sampled_from([100, 1000]),
)


@settings(max_examples=40, deadline=None)
@given(
    config=small_configs,
    gpus=st.integers(1, 512),
    more=st.integers(1, 512),
    micro_batch=st.integers(1, 16),
    seq_len=st.integers(1, 256),
    checkpointing=st.booleans(),
)
def test_more_gpus_under_zero3_never_raise_per_gpu_memory(
    config, gpus, more, micro_batch, seq_len, checkpointing
):
    run = PlanSettings(
        plugin="gemini",
        micro_batch_size=micro_batch,
        seq_len=seq_len,
        activation_checkpointing=checkpointing,
    )
    fewer = plan(config, ClusterSpec.of_gpu("H200", gpus), run)
    larger = plan(config, ClusterSpec.of_gpu("H200", gpus + more), run)
    assert larger.total_bytes <= fewer.total_bytes
    assert larger.tokens_per_s >= fewer.tokens_per_s


@settings(max_examples=40, deadline=None)
@given(
    config=small_configs,
    plugin=st.sampled_from(["torch_ddp", "low_level_zero", "gemini"]),
    micro_batch=st.integers(1, 16),
    seq_len=st.integers(1, 256),
    precision=st.sampled_from(["bf16", "fp32"]),
)
def test_checkpointing_never_raises_activation_memory(
    config, plugin, micro_batch, seq_len, precision
):
    run = PlanSettings(
        plugin=plugin, micro_batch_size=micro_batch, seq_len=seq_len, precision=precision
    )
    plain = plan(config, A100, run)
    ckpt = plan(config, A100, run.model_copy(update={"activation_checkpointing": True}))
    assert ckpt.activations_bytes <= plain.activations_bytes
    assert ckpt.total_bytes <= plain.total_bytes


def test_m6_100b_fits_the_paper_cluster_only_with_experts_sharded():
    config = M6Config.of_size("100b")
    cluster = ClusterSpec.of_gpu("A100-80GB", 128)
    sharded = plan(config, cluster, PlanSettings(plugin="moe_hybrid_parallel", ep_size=128, zero_stage=1,
                                                 micro_batch_size=16, seq_len=272))
    assert sharded.fits and sharded.n_params_experts > 0.99 * 100e9
    # top-1 of 1024 experts: a token passes through ~1/1024 of the expert parameters
    dense_share = sharded.n_params_matmul - 12 * (2 * 1024 * 4096 + 4096 + 1024)
    assert 0 < dense_share < 0.5e9
    replicated = plan(config, cluster, PlanSettings(plugin="moe_hybrid_parallel", ep_size=1, zero_stage=1,
                                                    micro_batch_size=16, seq_len=272))
    assert not replicated.fits
    with pytest.raises(PlanDoesNotFit, match="ep_size 128"):
        check_fits(replicated)


@settings(max_examples=30, deadline=None)
@given(tokens=st.integers(1, 200_000), vocab=st.integers(1_000, 100_000), on_cpu=st.booleans())
def test_the_output_layer_holds_one_chunk_of_logits_however_many_tokens(tokens, vocab, on_cpu):
    """The fused loss keeps one chunk of logits: past a chunk, more tokens add only the hidden
    states' gradient (2 bytes per width), never 6 bytes per vocabulary entry."""
    d = 1024
    more = output_layer_bytes(2 * tokens, vocab, d, on_cpu=on_cpu)
    once = output_layer_bytes(tokens, vocab, d, on_cpu=on_cpu)
    if tokens >= chunk_rows(vocab, "cpu" if on_cpu else "cuda"):
        assert more - once == 2 * tokens * d
    assert more - once <= tokens * (6 * vocab + 2 * d)
    assert once <= 6 * tokens * vocab + 2 * tokens * d + 4 * vocab * d


# host memory: one node of 8 GPUs (training/host_memory.py)
NODES = ClusterSpec.of_gpu("A100-80GB", 128)
SMALL_HOST = NODES.model_copy(update={"host_memory_gib": 256})
GEMINI_10B = dict(plugin="gemini", micro_batch_size=8, activation_checkpointing=True)


def test_10b_built_eagerly_on_8_gpu_nodes_exceeds_a_small_host_and_says_what_to_change():
    p = plan(TEN_B, SMALL_HOST, PlanSettings(**GEMINI_10B, lazy_init=False))
    assert p.device_fits and not p.fits and p.host.model_build == "eager"
    # every worker builds the whole model in fp32 before the Booster moves it
    assert p.host.model_build_bytes == pytest.approx(8 * 4 * p.n_params_full)
    assert p.host.total_bytes > SMALL_HOST.host_memory_gib * GIB
    with pytest.raises(PlanDoesNotFit) as raised:
        check_fits(p)
    message = str(raised.value)
    assert f"short by {p.host.shortfall_bytes / GIB:.1f} GiB" in message and "host memory per node" in message
    assert "lazy initialisation" in message and "host_memory_gib" in message


def test_10b_built_lazily_fits_the_same_host():
    p = check_fits(plan(TEN_B, SMALL_HOST, PlanSettings(**GEMINI_10B)))
    assert p.settings.lazy_init and p.host.model_build == "lazy"
    # Gemini materialises one tensor at a time: the word embedding, fp32 and its bf16 cast
    assert p.host.model_build_bytes == pytest.approx(8 * 6 * TEN_B.vocab_size * TEN_B.d_model)
    eager = plan(TEN_B, SMALL_HOST, PlanSettings(**GEMINI_10B, lazy_init=False))
    assert p.host.total_bytes < eager.host.total_bytes - 250 * GIB


def test_gemini_cpu_offload_moves_optimizer_states_to_host_memory():
    on_gpu = plan(TEN_B, NODES, PlanSettings(**GEMINI_10B))
    offloaded = plan(TEN_B, NODES, PlanSettings(**GEMINI_10B, offload_optim_frac=0.5))
    per_gpu = 12 * on_gpu.n_params_full / 128  # fp32 master weights and two moments over 128 ranks
    assert on_gpu.optimizer_states_bytes == pytest.approx(per_gpu)
    assert offloaded.optimizer_states_bytes == pytest.approx(per_gpu / 2)
    assert offloaded.host.optimizer_offload_bytes == pytest.approx(8 * per_gpu / 2)
    assert on_gpu.host.optimizer_offload_bytes == 0
    assert offloaded.host.total_bytes - on_gpu.host.total_bytes == pytest.approx(8 * per_gpu / 2)
    with pytest.raises(ValueError, match="offload_optim_frac"):
        PlanSettings(plugin="low_level_zero", offload_optim_frac=0.5)


@pytest.mark.parametrize("settings", [
    PlanSettings(**GEMINI_10B, lazy_init=False),
    PlanSettings(**GEMINI_10B, offload_optim_frac=1.0),
    PlanSettings(plugin="hybrid_parallel", tp_size=8, zero_stage=1, micro_batch_size=8),
    PlanSettings(plugin="torch_ddp", micro_batch_size=2),
], ids=["gemini_eager", "gemini_offload", "hybrid_tp8", "ddp"])
def test_host_memory_parts_add_up_and_plan_json_carries_them(settings):
    p = plan(TEN_B, NODES, settings)
    assert sum(p.host.parts().values()) == pytest.approx(p.host.total_bytes)
    assert p.host.fits == (p.host.total_bytes <= 1024 * GIB)
    dumped = json.loads(json.dumps(p.model_dump(mode="json")))
    assert dumped["host"]["total_bytes"] == pytest.approx(p.host.total_bytes)
    assert dumped["cluster"]["host_memory_gib"] == 1024 and dumped["cluster"]["gpus_per_node"] == 8


def test_host_memory_defaults_and_limits():
    assert ClusterSpec.of_gpu("H200", 8).host_memory_gib == 2048
    assert ClusterSpec(name="conf", n_gpus=16, gpu_memory_gib=80).host_memory_gib == 1024
    assert ClusterSpec.cpu_host(2).host_memory_gib == 24
    assert plan(LOCAL, ClusterSpec.cpu_host(2), PlanSettings(micro_batch_size=2, seq_len=128)).host is None
    assert not PlanSettings(plugin="torch_ddp").lazy_init and PlanSettings(plugin="gemini").lazy_init
    with pytest.raises(ValueError, match="lazy_init"):
        PlanSettings(plugin="torch_ddp", lazy_init=True)
    # one GPU: one worker process on its node
    assert plan(BASE, A100, PlanSettings()).host.workers_per_node == 1
