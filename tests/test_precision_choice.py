"""`precision: auto`: the probe's verdict decides, on both kinds of CPU, and is cached per machine."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m6_pipeline.machine import describe_machine, has_native_bf16
from m6_pipeline.precision_choice import (
    MIN_SPEEDUP,
    ProbeResult,
    ProbeShape,
    cache_key,
    choose_precision,
    probe_linear,
)

SHAPE = ProbeShape(tokens=2560, d_in=256, d_out=1024)
AVX2_ONLY = {"cpu_model": "AMD EPYC 7B12", "cpu_flags": ["avx2", "fma"], "cores": 2, "torch": "2.13.0+cpu",
             "torch_cpu_capability": "AVX2", "python": "3.11", "accelerator": None}
AMX = {**AVX2_ONLY, "cpu_model": "Intel Xeon Platinum 8481C",
       "cpu_flags": ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"],
       "torch_cpu_capability": "AVX512"}


class CountingProbe:
    """A probe whose result is injected; counts how often it is asked to measure."""

    def __init__(self, fp32: float, bf16: float):
        self.result, self.calls = ProbeResult(fp32_gflops=fp32, bf16_gflops=bf16), 0

    def __call__(self, shape: ProbeShape) -> ProbeResult:
        self.calls += 1
        return self.result


def test_auto_picks_fp32_where_bf16_is_emulated(tmp_path):
    # the AVX2-only EPYC of the issue: 0.9 GFLOP/s bf16 against 58.6 fp32
    choice = choose_precision("auto", shape=SHAPE, threads=1, cache_path=tmp_path / "c.json",
                              probe=CountingProbe(58.6, 0.9), machine=AVX2_ONLY)
    assert choice.precision == "fp32" and not choice.autocast_bf16
    assert "0.02x the fp32 speed" in choice.reason and "no bf16 instructions" in choice.reason
    assert choice.record()["probe"]["speedup"] == pytest.approx(0.9 / 58.6)
    assert choice.record()["machine"]["cpu_model"] == "AMD EPYC 7B12"


def test_auto_picks_bf16_where_it_is_native_and_fast(tmp_path):
    choice = choose_precision("auto", shape=SHAPE, threads=2, cache_path=tmp_path / "c.json",
                              probe=CountingProbe(187.0, 760.0), machine=AMX)
    assert choice.precision == "bf16" and choice.autocast_bf16
    assert "amx_bf16" in choice.reason and "4.06x" in choice.reason


@given(fp32=st.floats(1, 1e4), ratio=st.floats(0.01, 20))
@settings(max_examples=60, deadline=None)
def test_auto_is_bf16_exactly_when_the_measured_speedup_clears_the_margin(fp32, ratio):
    probe = CountingProbe(fp32, fp32 * ratio)
    choice = choose_precision("auto", shape=SHAPE, threads=1, cache_path=None, probe=probe, machine=AMX)
    assert (choice.precision == "bf16") == (probe.result.speedup >= MIN_SPEEDUP)
    assert choice.probe["speedup"] == pytest.approx(ratio)


def test_the_probe_runs_once_per_machine_and_shape(tmp_path):
    cache = tmp_path / "cache" / "probe.json"
    probe = CountingProbe(60.0, 3.0)
    first = choose_precision("auto", shape=SHAPE, threads=1, cache_path=cache, probe=probe, machine=AVX2_ONLY)
    again = choose_precision("auto", shape=SHAPE, threads=1, cache_path=cache, probe=probe, machine=AVX2_ONLY)
    assert probe.calls == 1 and not first.probe["cached"] and again.probe["cached"]
    assert again.precision == first.precision == "fp32" and "measured earlier" in again.reason
    choose_precision("auto", shape=SHAPE, threads=2, cache_path=cache, probe=probe, machine=AVX2_ONLY)
    assert probe.calls == 1  # the probe compares one core's kernels, whatever the stage's threads
    choose_precision("auto", shape=ProbeShape(64, 256, 1024), threads=1, cache_path=cache, probe=probe,
                     machine=AVX2_ONLY)
    choose_precision("auto", shape=SHAPE, threads=1, cache_path=cache, probe=probe, machine=AMX)
    assert probe.calls == 3  # another shape, another machine: measured anew
    assert cache_key(AVX2_ONLY, SHAPE) in json.loads(cache.read_text())


def test_an_unreadable_cache_is_measured_again_not_fatal(tmp_path):
    cache = tmp_path / "probe.json"
    cache.write_text("{not json")
    probe = CountingProbe(60.0, 300.0)
    assert choose_precision("auto", shape=SHAPE, threads=1, cache_path=cache, probe=probe,
                            machine=AMX).precision == "bf16"
    assert probe.calls == 1 and json.loads(cache.read_text())  # rewritten whole


@pytest.mark.parametrize("explicit", ["bf16", "bf16-master", "fp32"])
def test_explicit_precisions_are_kept_without_probing(explicit, tmp_path):
    probe = CountingProbe(1.0, 1.0)
    choice = choose_precision(explicit, shape=SHAPE, threads=1, cache_path=tmp_path / "c.json", probe=probe,
                              machine=AVX2_ONLY)
    assert choice.precision == explicit and probe.calls == 0 and choice.reason == "set explicitly in parameters"


def test_cuda_uses_bf16_where_the_gpu_supports_it():
    probe = CountingProbe(1.0, 1.0)
    assert choose_precision("auto", shape=SHAPE, threads=1, device="cuda", cuda_bf16=True, probe=probe,
                            machine=AMX).precision == "bf16"
    assert choose_precision("auto", shape=SHAPE, threads=1, device="cuda", cuda_bf16=False, probe=probe,
                            machine=AMX).precision == "fp32"
    assert probe.calls == 0


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="auto, bf16, bf16-master, fp32"):
        choose_precision("fp16", shape=SHAPE, threads=1, machine=AMX)


def test_the_real_probe_measures_both_precisions_here():
    result = probe_linear(ProbeShape(tokens=256, d_in=64, d_out=128), seconds=0.05)
    assert result.fp32_gflops > 0 and result.bf16_gflops > 0


def test_this_machine_is_described_with_its_bf16_flags():
    machine = describe_machine()
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["torch_cpu_capability"]
    assert has_native_bf16(AMX) and not has_native_bf16(AVX2_ONLY)
    assert isinstance(has_native_bf16(machine), bool)


def test_capping_the_instruction_set_makes_a_new_machine_an_avx2_one(tmp_path):
    capped = {**AMX, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"}, "torch_cpu_capability": "AVX2"}
    assert not has_native_bf16(capped)
    assert cache_key(capped, SHAPE) != cache_key(AMX, SHAPE)  # measured apart
    choice = choose_precision("auto", shape=SHAPE, threads=1, cache_path=tmp_path / "c.json",
                              probe=CountingProbe(100.0, 20.0), machine=capped)
    assert choice.precision == "fp32" and "capped away" in choice.reason


def test_the_budget_resolver_follows_the_probe(tmp_path, monkeypatch):
    from m6_pipeline import precision_choice

    monkeypatch.setattr(precision_choice, "DEFAULT_CACHE", tmp_path / "probe.json")
    for bf16, expected in ((400.0, 1400), (10.0, 700)):
        (tmp_path / "probe.json").unlink(missing_ok=True)
        monkeypatch.setattr(precision_choice, "probe_linear", CountingProbe(100.0, bf16))
        assert precision_choice.by_bf16_speed(1400, 700) == expected


def test_conf_local_budgets_resolve_through_kedro(monkeypatch):
    """`${by_bf16_speed:FAST,SLOW}` in conf/local reaches the parameters as a number."""
    from kedro.config import OmegaConfigLoader

    from m6_pipeline import precision_choice, settings
    from tests.conftest import ROOT

    for fast, key in ((True, 0), (False, 1)):
        monkeypatch.setattr(precision_choice, "runs_bf16_fast", lambda fast=fast: fast)
        loader = OmegaConfigLoader(str(ROOT / "conf"), env="local", **{
            k: v for k, v in settings.CONFIG_LOADER_ARGS.items() if k != "default_run_env"})
        steps = loader["parameters"]["pretrain_base"]["pretrain"]["steps"]
        raw = (ROOT / "conf/local/parameters_pretrain.yml").read_text()
        budget = raw.split("steps: ${by_bf16_speed:", 1)[1].split("}", 1)[0].split(",")
        assert steps == int(budget[key])
