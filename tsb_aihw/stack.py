"""Stack self-check: proves the pinned torch/torchvision/aihwkit stack runs both AIHWKit tile kinds.

A wrong torch version does not always fail at import: with torch 2.13/2.14 the compiled aihwkit 1.1.0
tiles import fine and only raise at the first forward ('weights must be a CPU tensor'). So we run one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

from tsb_aihw.errors import StackError

PINS = {"torch": "2.10.0", "torchvision": "0.25.0", "aihwkit": "1.1.0"}
FIX = ("reinstall the pinned stack: .venv/bin/pip install -e '.[test]' (torch==2.10.0, torchvision==0.25.0, "
       "aihwkit==1.1.0)")


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
    import torch
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator import configs

    rpu = getattr(configs, config_name)()
    layer = AnalogLinear(8, 4, bias=True, rpu_config=rpu)
    layer.eval()
    with torch.no_grad():
        out = layer(torch.ones(2, 8))
    if out.shape != (2, 4) or not torch.isfinite(out).all():
        raise RuntimeError(f"bad output {tuple(out.shape)}")
    return type(next(layer.analog_tiles())).__name__


def check_stack() -> StackReport:
    """Run every check; never raises, so the report can list all problems at once."""
    rep = StackReport()
    for pkg, want in PINS.items():
        have = _version(pkg)
        base = (have or "").split("+")[0]
        rep.add(f"{pkg} version", base == want, f"installed {have or 'none'}, pinned {want}")
    try:
        import aihwkit  # noqa: F401

        rep.add("import aihwkit", True, "ok")
    except Exception as exc:  # pragma: no cover - depends on a broken stack
        rep.add("import aihwkit", False, f"{type(exc).__name__}: {exc}")
        return rep
    for cfg in ("InferenceRPUConfig", "TorchInferenceRPUConfig"):
        try:
            tile = _tile_forward(cfg)
            rep.add(f"{cfg} forward", True, f"{tile} ran a forward pass")
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
