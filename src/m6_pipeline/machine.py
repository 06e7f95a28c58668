"""What machine a figure was measured on: CPU model, the flags that decide matmul speed, cores,
torch's CPU capability and the accelerator. A figure from one kind of CPU says nothing about
another (bf16 is native on AMX / AVX-512-BF16 and emulated, ~25x slower a step, on AVX2 only),
so every run record and benchmark result carries this description."""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

# the variables that cap the instruction set the math libraries use: set together they make an
# AVX-512/AMX machine run the kernels of an AVX2-only one (`make run CPU_ISA=avx2`)
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
# the CPU flags that change which matmul kernels run, and how fast (Linux /proc/cpuinfo names)
MATMUL_FLAGS = (
    "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
    "amx_bf16", "amx_int8", "amx_tile",
)


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; elsewhere the platform's processor string."""
    model, flags = platform.processor() or platform.machine(), set()
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features"):
                flags = set(value.split())
            if model and flags:
                break
    return model, flags


@cache
def describe_machine() -> dict:
    """A JSON-ready description of this machine; cached for the process (it does not change)."""
    import torch

    model, flags = _cpuinfo()
    out = {
        "cpu_model": model,
        "cpu_flags": [f for f in MATMUL_FLAGS if f in flags],
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "accelerator": None,
        # the flags above are the hardware's; these caps, where set, limit what the kernels use
        "isa_caps": {name: os.environ[name] for name in ISA_CAPS if os.environ.get(name)},
    }
    if torch.cuda.is_available():
        out["accelerator"] = {
            "name": torch.cuda.get_device_name(0),
            "count": torch.cuda.device_count(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return out


def has_native_bf16(machine: dict | None = None) -> bool:
    """Whether the CPU has bf16 matmul instructions (AMX or AVX-512-BF16). A hint only: the
    precision probe measures the speed that decides (`m6_pipeline.precision_choice`)."""
    machine = machine or describe_machine()
    if machine.get("isa_caps", {}).get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2"):
        return False  # the bf16 kernels are capped away: the flags no longer say what runs
    return bool(set(machine["cpu_flags"]) & {"amx_bf16", "avx512_bf16"})
