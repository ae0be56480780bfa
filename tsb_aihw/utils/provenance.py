"""What every result file records: versions and machine, next to its config and seed."""
from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("tsb-aihw", "torch", "torchvision", "aihwkit", "numpy")


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance() -> dict[str, Any]:
    """Package versions, platform, CPU and the runtime settings (torch threads) that change a run's bits.

    The config and seed are recorded next to it by each results writer (``config``, ``seed`` keys)."""
    from tsb_aihw.utils.precision import CPU_BF16_FLAGS, cpu_flags, cpu_model_name
    from tsb_aihw.utils.seeding import runtime_settings

    flags = cpu_flags()  # numbers from different CPUs differ in the last floats: name the CPU beside them
    return {"versions": package_versions(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu": {"model": cpu_model_name(), "native_bf16_flags": sorted(f for f in CPU_BF16_FLAGS if f in flags)},
            "runtime": runtime_settings()}
