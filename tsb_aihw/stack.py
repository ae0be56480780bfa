"""Stack self-check: proves the pinned torch/torchvision/aihwkit stack runs both AIHWKit tile kinds.

Each supported Python gets one pinned stack (:data:`STACKS`; pyproject.toml's environment markers say the same,
tests/test_stack.py checks that they agree). AIHWKit's compiled tiles (``rpu_base``) are built against one torch
ABI, and a wrong torch does not always fail at import: with torch 2.13/2.14 the compiled aihwkit 1.1.0 tiles
import fine and only raise at the first forward ('weights must be a CPU tensor'). So we run one.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib import metadata

from tsb_aihw.errors import StackError

# The one table of pins: Python major.minor -> the stack pyproject.toml installs there.
# 3.11: aihwkit 1.1.0's cp311 wheel, built against torch 2.10 (aihwkit 1.2.0 is only a source tarball for 3.11).
# 3.12/3.13: aihwkit 1.2.0's wheels, whose rpu_base needs torch >= 2.14; torchvision 0.29 is 2.14's release.
_STACK_1_1 = {"torch": "2.10.0", "torchvision": "0.25.0", "aihwkit": "1.1.0"}
_STACK_1_2 = {"torch": "2.14.1", "torchvision": "0.29.1", "aihwkit": "1.2.0"}
STACKS: dict[str, dict[str, str]] = {"3.11": _STACK_1_1, "3.12": _STACK_1_2, "3.13": _STACK_1_2}


def python_version() -> str:
    """This interpreter's ``major.minor``, the key of :data:`STACKS`."""
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def pins(version: str | None = None) -> dict[str, str]:
    """The pinned stack for ``version`` (default: this interpreter); empty for an unsupported Python."""
    return dict(STACKS.get(version or python_version(), {}))


def supported_text() -> str:
    """'3.11, 3.12 or 3.13'"""
    names = list(STACKS)
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def fix_message(version: str | None = None) -> str:
    """What to run when the check fails, derived from the pins of ``version`` (default: this interpreter)."""
    want = pins(version)
    if not want:
        return (f"tsb-aihw runs on Python {supported_text()}, this is {version or python_version()}: "
                "make test PYTHON=/path/to/python3.13 (README: Python versions)")
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    spec = ", ".join(f"{pkg}=={ver}" for pkg, ver in want.items())
    return f"reinstall the pinned stack: {python} -m pip install -e '.[test]' ({spec})"


PINS = pins()  # this interpreter's stack ({} on an unsupported Python: check_stack reports it)
FIX = fix_message()


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass
class StackReport:
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(CheckResult(name, ok, detail))

    def format(self) -> str:
        lines = [f"[{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        if not self.ok:
            lines.append(f"fix: {FIX}")
        return "\n".join(lines)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def _tile_forward(config_name: str) -> str:
    """One noisy forward (finite, right shape) and one ``is_perfect`` forward, which must equal x W^T + b: a
    torch the compiled tiles were not built for can also run and return wrong numbers."""
    import torch
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator import configs

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, generator=gen) * 2 - 1
    rpu = getattr(configs, config_name)()
    layer = AnalogLinear(8, 4, bias=True, rpu_config=rpu).eval()
    with torch.no_grad():
        out = layer(x)
    if out.shape != (3, 4) or not torch.isfinite(out).all():
        raise RuntimeError(f"bad output {tuple(out.shape)}")
    rpu = getattr(configs, config_name)()
    rpu.forward.is_perfect = True
    layer = AnalogLinear(8, 4, bias=True, rpu_config=rpu).eval()
    weight, bias = layer.get_weights()
    with torch.no_grad():
        err = (layer(x) - torch.nn.functional.linear(x, weight, bias)).abs().max().item()
    if not err < 1e-5:
        raise RuntimeError(f"an exact (is_perfect) forward is off x W^T + b by {err:.3g}")
    return type(next(layer.analog_tiles())).__name__


def check_stack() -> StackReport:
    """Run every check; never raises, so the report can list all problems at once."""
    rep = StackReport()
    version = python_version()
    rep.add("python", bool(PINS), f"{sys.version.split()[0]} ({'supported' if PINS else 'unsupported'}: "
            f"tsb-aihw runs on {supported_text()})")
    if not PINS:
        return rep
    for pkg, want in PINS.items():
        have = _version(pkg)
        base = (have or "").split("+")[0]
        rep.add(f"{pkg} version", base == want, f"installed {have or 'none'}, pinned {want} for Python {version}")
    try:
        import aihwkit  # noqa: F401

        rep.add("import aihwkit", True, "ok")
    except Exception as exc:  # pragma: no cover - depends on a broken stack
        rep.add("import aihwkit", False, f"{type(exc).__name__}: {exc}")
        return rep
    for cfg in ("InferenceRPUConfig", "TorchInferenceRPUConfig"):
        try:
            tile = _tile_forward(cfg)
            rep.add(f"{cfg} forward", True, f"{tile} ran a forward pass (an exact one equals x W^T + b)")
        except Exception as exc:
            rep.add(f"{cfg} forward", False, f"{type(exc).__name__}: {exc}")
    try:
        import torchvision
        from torchvision import transforms  # noqa: F401

        rep.add("import torchvision", True, torchvision.__version__)
    except Exception as exc:
        rep.add("import torchvision", False, f"{type(exc).__name__}: {exc}")
    return rep


def require_stack() -> StackReport:
    rep = check_stack()
    if not rep.ok:
        raise StackError("the simulator stack is broken:\n" + rep.format())
    return rep
