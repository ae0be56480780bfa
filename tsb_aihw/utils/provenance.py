"""What every result file records: versions and machine, next to its config and seed."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.precision import CPU_BF16_FLAGS, cpu_flags, cpu_model_name
from tsb_aihw.utils.schema import build, spec, to_tree
from tsb_aihw.utils.seeding import RuntimeSettings, runtime_settings

PACKAGES = ("tsb-aihw", "torch", "torchvision", "aihwkit", "numpy")


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True, kw_only=True)
class CpuInfo:
    """The CPU a run's numbers came from: numbers from different CPUs differ in the last floats."""

    model: str
    native_bf16_flags: list[str]


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Package versions, platform, CPU and the runtime settings (torch threads) that change a run's bits; the
    results writers that evaluate chips add how they were evaluated (``fast_eval``). Files written before a
    field existed lack its key (``cpu``), so such fields are left out while None."""

    versions: dict[str, str]
    platform: str
    machine: str
    cpu: CpuInfo | None = spec(None, omit_none=True)
    runtime: RuntimeSettings
    fast_eval: dict[str, str] | None = spec(None, omit_none=True)  # mode and matrix product (StudyContext)

    def to_dict(self) -> JsonObject:
        tree = to_tree(self)
        assert isinstance(tree, dict)
        return tree

    @classmethod
    def from_dict(cls, data: Any, where: str = "provenance") -> Provenance:
        """A written provenance read back (types checked; one-line ConfigError else)."""
        out: Provenance = build(cls, data, src=where)
        return out


def provenance(fast_eval: dict[str, str] | None = None) -> Provenance:
    """This run's :class:`Provenance` (``fast_eval``: how its chips are evaluated, where it evaluates chips).

    The config and seed are recorded next to it by each results writer (``config``, ``seed`` keys)."""
    flags = cpu_flags()
    return Provenance(versions=package_versions(), platform=platform.platform(), machine=platform.machine(),
                      cpu=CpuInfo(model=cpu_model_name(),
                                  native_bf16_flags=sorted(f for f in CPU_BF16_FLAGS if f in flags)),
                      runtime=runtime_settings(), fast_eval=fast_eval)
