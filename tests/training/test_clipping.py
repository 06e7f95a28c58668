"""Who clips under each plugin: the CUDA plugins are built with the run's max_norm (ColossalAI
0.5 constructs them on CPU inside a one-rank gloo group, so what they hold is checked), a run
whose clipping a plugin cannot honour is refused before anything is built, and the master-weight
optimizer reports the pre-clip norm it clipped by. (torch_ddp, one and two ranks:
test_clipping_and_export_gloo.py.)"""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from pydantic import ValidationError

from m6_pipeline.model import M6Config
from m6_pipeline.training.clipping import ClipPlan, clip_plan, norm_after_step
from m6_pipeline.training.config import OptimizerConfig, PluginConfig
from m6_pipeline.training.plugins import make_plugin
from m6_pipeline.training.precision import MasterWeightAdamW
from tests.conftest import ROOT

MOE = {"n_experts": 4, "top_k": 1}


def tiny(moe: dict | None = None) -> M6Config:
    return M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8, moe=moe)


SCRIPT = textwrap.dedent('''
    import json, sys, tempfile, warnings
    warnings.filterwarnings("ignore")
    import torch.distributed as dist
    from m6_pipeline.model import M6Config
    from m6_pipeline.training.config import OptimizerConfig, PluginConfig
    from m6_pipeline.training.plugins import make_plugin

    dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}", rank=0, world_size=1)
    dense = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8)
    moe = M6Config.of_size("tiny", vocab_size=40, n_patches=4, d_patch_feature=8, moe={"n_experts": 4})
    held = {}
    for name, model, clipping in [("low_level_zero", dense, "local"), ("gemini", dense, "local"),
                                  ("hybrid_parallel", dense, "local"), ("moe_hybrid_parallel", moe, "with_dense")]:
        plugin = make_plugin(PluginConfig(name=name, zero_stage=1), use_gpu=True, precision="bf16", model=model,
                             optimizer=OptimizerConfig(grad_clip=0.7, expert_clipping=clipping))
        held[name] = {
            "low_level_zero": lambda p: p.zero_optim_kwargs["clip_grad_norm"],  # LowLevelZeroOptimizer's
            "gemini": lambda p: p.optim_kwargs["max_norm"],  # GeminiOptimizer's
        }.get(name, lambda p: p.max_norm)(plugin)  # the hybrid plugins hand it to their optimizers
    print("HELD " + json.dumps(held))
    dist.destroy_process_group()
''')


def test_the_cuda_plugins_are_built_with_the_runs_max_norm(tmp_path):
    script = tmp_path / "plugins.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "store")], capture_output=True, text=True,
                          check=False, timeout=300, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("HELD ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    assert json.loads(lines[-1][len("HELD "):]) == {
        "low_level_zero": 0.7, "gemini": 0.7, "hybrid_parallel": 0.7, "moe_hybrid_parallel": 0.7}


@pytest.mark.parametrize(("plugin", "precision", "moe", "expected"), [
    ("torch_ddp", "bf16", False, ClipPlan("loop", 0.7)),
    ("torch_ddp", "fp32", True, ClipPlan("loop", 0.7, local_experts=True)),
    ("torch_ddp", "bf16-master", False, ClipPlan("master_weights", 0.7)),
    ("low_level_zero", "bf16", False, ClipPlan("plugin", 0.7)),
    ("gemini", "bf16", False, ClipPlan("plugin", 0.7)),
    ("hybrid_parallel", "fp32", False, ClipPlan("plugin", 0.7)),
])
def test_whoever_holds_the_gradients_clips_them(plugin, precision, moe, expected):
    plan = clip_plan(PluginConfig(name=plugin), OptimizerConfig(grad_clip=0.7), precision=precision, moe=moe)
    assert plan == expected
    assert plan.plugin_kwargs() == ({"max_norm": 0.7} if plugin != "torch_ddp" else {})


def test_local_expert_clipping_under_the_moe_plugin_is_refused_before_anything_is_built():
    config = PluginConfig(name="moe_hybrid_parallel", ep_size=2, zero_stage=1)
    with pytest.raises(ValueError, match="expert_clipping: with_dense, or train with plugin.name: torch_ddp"):
        make_plugin(config, use_gpu=True, precision="bf16", model=tiny(MOE), optimizer=OptimizerConfig())
    plan = clip_plan(config, OptimizerConfig(expert_clipping="with_dense"), precision="bf16", moe=True)
    assert plan == ClipPlan("plugin", 1.0)


def test_a_clipping_norm_must_be_positive():
    with pytest.raises(ValidationError, match="grad_clip"):
        OptimizerConfig(grad_clip=0)


def test_the_master_weight_optimizer_reports_the_norm_it_clipped_by():
    model = torch.nn.Linear(3, 2).to(torch.bfloat16)
    optimizer = MasterWeightAdamW(model, max_grad_norm=0.5, lr=0.1)
    plan = clip_plan(PluginConfig(), OptimizerConfig(grad_clip=0.5), precision="bf16-master", moe=False)
    assert norm_after_step(plan, optimizer) == {
        "grad_norm": None,
        "grad_norm_missing": "MasterWeightAdamW computed no gradient norm this step (a step skipped "
        "after an overflow, or clipping off)",
    }
    model.weight.grad = torch.full((2, 3), 2.0, dtype=torch.bfloat16)  # norm sqrt(6 * 4)
    model.bias.grad = torch.tensor([1.0, -1.0], dtype=torch.bfloat16)  # + 2 = sqrt(26)
    optimizer.step()
    assert norm_after_step(plan, optimizer) == {"grad_norm": pytest.approx(26**0.5, rel=1e-6)}
