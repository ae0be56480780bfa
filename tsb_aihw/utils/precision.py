"""Which floating-point precision a training run uses: ``fp32``, ``bf16`` (autocast) or ``auto``.

Why a detector: bf16 autocast is 2-4x faster than fp32 where the hardware computes bf16 natively (Intel AMX /
AVX512-BF16 CPUs, Ampere+ GPUs) and slower where it is emulated (e.g. the AMD EPYCs without AVX-512 this project
also runs on). ``auto`` therefore picks bf16 only where it is native, and a run records the precision it
resolved to, never ``auto``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from tsb_aihw.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")
#: /proc/cpuinfo flags that mean bf16 matrix products run natively on the CPU (oneDNN uses them)
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The ``flags`` of the first CPU in ``cpuinfo`` (empty where the file does not exist, e.g. macOS)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_model_name(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's ``model name`` from ``cpuinfo`` ('unknown' where absent)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "unknown"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return "unknown"


def native_bf16(device: torch.device, flags: Iterable[str] | None = None) -> bool:
    """True where ``device`` computes bf16 natively: a CUDA GPU that supports it, or a CPU with one of
    :data:`CPU_BF16_FLAGS` (``flags`` replaces the machine's /proc/cpuinfo flags, for tests)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    present = frozenset(flags) if flags is not None else cpu_flags()
    return any(flag in present for flag in CPU_BF16_FLAGS)


def check_precision(value: object) -> str:
    """``value`` if it is one of :data:`PRECISIONS`, else one ConfigError line."""
    if value not in PRECISIONS:
        raise ConfigError(f"precision {value!r} is unknown; choose one of {', '.join(PRECISIONS)}")
    return str(value)


def resolve_precision(requested: str, device: torch.device, flags: Iterable[str] | None = None) -> str:
    """``fp32`` or ``bf16``: ``requested`` itself, or for ``auto`` bf16 exactly where :func:`native_bf16`."""
    if check_precision(requested) != "auto":
        return requested
    return "bf16" if native_bf16(device, flags) else "fp32"
