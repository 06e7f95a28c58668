"""Whether this Python can run the GPU suite (benchmarks/gpu_suite.sh), every failure at once.

    python benchmarks/gpu_deps.py [--dry-run] [--output PATH]

Checks the Python version (pyproject's requires-python, 3.11), torch with a CUDA device,
`torch.nn.functional.grouped_mm` (the MoE layer's expert products, run once in bf16 on the
device against the per-expert loop), ColossalAI 0.5.0 and its Booster plugins, safetensors,
pydantic, and every module the suite's scripts import (read from their source, so a new import
is checked without editing this list). It also notes what ColossalAI needs to build the fused
Adam kernel Gemini trains with on first use (nvcc, ninja, a C++ compiler): only the gemini part
needs it, so its absence is a warning.

Standard library only at the top: it runs (and reports torch missing) under any python3.
--dry-run: no CUDA device required and nothing written; the rest is checked as on a GPU machine.
Otherwise writes JSON to --output, default $OUT/gpu_deps.json when $OUT is set, else
benchmarks/results/gpu_deps.json. Exit 0: all present; 1: something a part needs is missing
(the suite runs the rest); 2: no torch or no CUDA device (nothing on the GPU can run).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
BENCHMARKS = ROOT / "benchmarks"
# the Python scripts gpu_suite.sh runs; their imports are checked
SUITE_SCRIPTS = ("gpu_mfu.py", "gpu_moe_mfu.py", "gpu_vqgan_step.py", "gpu_plugins.py")
PYTHON = (3, 11)
COLOSSALAI = "0.5.0"


def script_imports(paths: list[Path]) -> list[tuple[str, str | None]]:
    """(module, name) of every absolute import in the files, at any depth (imports inside
    functions too); name is None for `import module`. Sibling scripts are left out."""
    found: dict[tuple[str, str | None], None] = {}
    local = {p.stem for p in BENCHMARKS.glob("*.py")}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found[(alias.name, None)] = None
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
                for alias in node.names:
                    found[(node.module, alias.name)] = None
    return [key for key in found if key[0].split(".")[0] not in local]


def _import(module: str, name: str | None) -> None:
    imported = importlib.import_module(module)
    if name is not None and not hasattr(imported, name):
        importlib.import_module(f"{module}.{name}")  # a submodule, or ImportError naming it


def _error(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def check_torch(dry_run: bool) -> tuple[list[str], list[str], dict]:
    """(fatal, missing, facts) for torch, its CUDA device and grouped_mm."""
    try:
        import torch
        import torch.nn.functional as F
    except Exception as exc:  # noqa: BLE001  (any import failure is the finding)
        return [f"torch does not import: {_error(exc)}"], [], {}
    facts = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
             "cuda_available": torch.cuda.is_available()}
    fatal, missing = [], []
    if torch.cuda.is_available():
        facts["device"] = torch.cuda.get_device_name()
        facts["bf16_supported"] = torch.cuda.is_bf16_supported()
    elif not dry_run:
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        fatal.append(f"torch {torch.__version__} ({build}) sees no CUDA device: the suite needs one GPU")
    if not hasattr(F, "grouped_mm"):
        missing.append(f"torch.nn.functional.grouped_mm is missing in torch {torch.__version__} "
                       "(the MoE layer needs it; torch >= 2.9)")
        return fatal, missing, facts
    try:
        from m6_pipeline.model.moe import grouped_ffn, per_expert_loop_ffn

        device = "cuda" if torch.cuda.is_available() else "cpu"
        generator = torch.Generator().manual_seed(0)
        counts = torch.tensor([3, 0, 5, 8])
        tensors = [torch.randn(shape, generator=generator) * 0.1 for shape in
                   ((16, 32), (4, 32, 64), (4, 64), (4, 64, 32), (4, 32))]
        h, w1, b1, w2, b2 = (t.to(device, torch.bfloat16) for t in tensors)
        grouped = grouped_ffn(h, counts.to(device), w1, b1, w2, b2).float()
        loop = per_expert_loop_ffn(h, counts.to(device), w1, b1, w2, b2).float()
        if not torch.allclose(grouped, loop, atol=2e-2, rtol=2e-2):
            missing.append(f"grouped_mm on {device} in bf16 differs from the per-expert loop by "
                           f"{(grouped - loop).abs().max().item():.3g}")
        facts["grouped_mm_checked_on"] = device
    except Exception as exc:  # noqa: BLE001
        missing.append(f"grouped_mm (bf16) fails: {_error(exc)}")
    return fatal, missing, facts


def check_imports() -> tuple[list[str], dict]:
    """Every import of the suite's scripts, ColossalAI's version and its Booster plugins."""
    missing, facts = [], {}
    wanted = [("colossalai.booster.plugin", name) for name in
              ("TorchDDPPlugin", "GeminiPlugin", "LowLevelZeroPlugin", "HybridParallelPlugin",
               "MoeHybridParallelPlugin")]
    wanted += [("safetensors.torch", None), ("pydantic", None), ("colossalai.nn.optimizer", "FusedAdam")]
    wanted += script_imports([BENCHMARKS / name for name in SUITE_SCRIPTS])
    by_error: dict[str, list[str]] = {}  # one line per cause: "no torch" fails many imports
    for module, name in dict.fromkeys(wanted):
        try:
            _import(module, name)
        except Exception as exc:  # noqa: BLE001
            by_error.setdefault(_error(exc), []).append(f"{module}{'.' + name if name else ''}")
    missing += [f"{error} (importing {', '.join(names)})" for error, names in by_error.items()]
    for package in ("colossalai", "pydantic", "safetensors"):
        try:
            facts[package] = importlib.import_module(package).__version__
        except Exception:  # noqa: BLE001  (already reported above)
            facts[package] = None
    if facts["colossalai"] not in (None, COLOSSALAI):
        missing.append(f"colossalai {facts['colossalai']} is installed; the project is written for "
                       f"{COLOSSALAI} (pip install --no-deps colossalai=={COLOSSALAI})")
    return missing, facts


def kernel_toolchain() -> tuple[list[str], dict]:
    """What ColossalAI's JIT build of the fused Adam kernel needs (Gemini only)."""
    tools = {tool: shutil.which(tool) for tool in ("nvcc", "ninja", "c++")}
    if tools["nvcc"] is None and os.environ.get("CUDA_HOME"):
        candidate = Path(os.environ["CUDA_HOME"]) / "bin" / "nvcc"
        tools["nvcc"] = str(candidate) if candidate.exists() else None
    absent = [tool for tool, path in tools.items() if path is None]
    warnings = [f"no {', '.join(absent)} on PATH: the gemini part cannot build ColossalAI's fused "
                "Adam kernel (set CUDA_HOME or install the CUDA toolkit and ninja)"] if absent else []
    return warnings, tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="no CUDA required, nothing written")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    report: dict = {"python": sys.version.split()[0], "executable": sys.executable}
    fatal, missing, warnings = [], [], []
    if sys.version_info[:2] != PYTHON:
        missing.append(f"Python {report['python']} at {sys.executable}; the project needs "
                       f"{PYTHON[0]}.{PYTHON[1]} (set PYTHON=... for gpu_suite.sh)")
    torch_fatal, torch_missing, facts = check_torch(args.dry_run)
    fatal += torch_fatal
    missing += torch_missing
    report.update(facts)
    import_missing, facts = check_imports()
    missing += import_missing
    report.update(facts)
    warnings, report["kernel_toolchain"] = kernel_toolchain()
    report.update(fatal=fatal, missing=missing, warnings=warnings)

    print(f"dependency check: Python {report['python']} ({sys.executable}), torch {report.get('torch')}, "
          f"CUDA device: {report.get('device', 'none')}, colossalai {report.get('colossalai')}")
    for label, lines in (("FATAL", fatal), ("MISSING", missing), ("warning", warnings)):
        for line in lines:
            print(f"  {label}: {line}")
    if not fatal and not missing:
        print("  all dependencies present")
    if not args.dry_run:
        output = args.output or (Path(os.environ["OUT"]) / "gpu_deps.json" if os.environ.get("OUT")
                                 else BENCHMARKS / "results" / "gpu_deps.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(report, indent=1))
    return 2 if fatal else 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
