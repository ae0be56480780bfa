"""The pinned stacks: one table (tsb_aihw.stack.STACKS) that pyproject.toml and the Makefile agree with, an
unsupported Python refused in one line before anything is installed, and the compiled AIHWKit tiles computing
the right numbers on whichever supported stack runs this suite."""
from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tsb_aihw.stack import PINS, STACKS, check_stack, fix_message, pins, python_version

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("torch", "torchvision", "aihwkit")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject_pins(version: str) -> dict[str, str]:
    """The ==-pins pyproject.toml installs for Python ``version`` (its environment markers evaluated)."""
    out: dict[str, str] = {}
    env = {"python_version": version, "python_full_version": f"{version}.0"}
    for line in _project()["dependencies"]:
        req = Requirement(line)
        if req.name in PINNED and (req.marker is None or Marker(str(req.marker)).evaluate(env)):
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: pin the compiled stack exactly"
            assert req.name not in out, f"two pins of {req.name} for Python {version}"
            out[req.name] = spec.version
    return out


@pytest.mark.parametrize("version", sorted(STACKS))
def test_pyproject_pins_equal_the_stack_table(version: str) -> None:
    assert _pyproject_pins(version) == STACKS[version]


def test_requires_python_admits_exactly_the_pinned_interpreters() -> None:
    spec = SpecifierSet(_project()["requires-python"])
    for minor in range(8, 16):
        version = f"3.{minor}"
        assert (f"{version}.0" in spec) == (version in STACKS), version


def test_makefile_supports_the_same_interpreters() -> None:
    line = re.search(r"^SUPPORTED := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert line and line.group(1).split() == list(STACKS)


def test_the_two_stacks() -> None:
    assert STACKS["3.11"] == {"torch": "2.10.0", "torchvision": "0.25.0", "aihwkit": "1.1.0"}
    assert STACKS["3.12"] == STACKS["3.13"] and STACKS["3.13"]["aihwkit"] == "1.2.0"


def test_fix_message_is_derived_from_the_pins() -> None:
    for version, want in STACKS.items():
        msg = fix_message(version)
        assert "\n" not in msg and all(f"{pkg}=={ver}" in msg for pkg, ver in want.items()), msg
    msg = fix_message("3.10")
    assert "\n" not in msg and "3.11, 3.12 or 3.13" in msg and "PYTHON=" in msg
    assert pins("3.10") == {} and pins("3.15") == {}


def _fake_python(tmp_path: Path, version: str) -> Path:
    """An 'interpreter' that answers the Makefile's version probe with ``version`` and can do nothing else."""
    exe = tmp_path / f"python{version}"
    exe.write_text(f"#!/bin/sh\necho {version}\n")
    exe.chmod(0o755)
    return exe


@pytest.mark.parametrize("version", ["3.10", "3.15"])
def test_make_refuses_an_unsupported_python_in_one_line(tmp_path: Path, version: str) -> None:
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    res = subprocess.run(["make", "-s", "-C", str(ROOT), "test", f"PYTHON={_fake_python(tmp_path, version)}",
                          f"VENV={venv}"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and f"is Python {version}" in lines[0] and "3.11, 3.12 or 3.13" in lines[0], lines
    assert not venv.exists()  # refused before anything was created or installed


def test_make_refuses_a_missing_python_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    res = subprocess.run(["make", "-s", "-C", str(ROOT), "demo", f"PYTHON={tmp_path / 'no-python'}",
                          f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, env=env, timeout=60)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode != 0 and len(lines) == 1 and "does not run" in lines[0], lines
    assert not (tmp_path / "venv").exists()


def test_this_interpreter_runs_its_pinned_stack() -> None:
    """Not skipped anywhere: the suite itself must run on a supported Python with that Python's pins."""
    import aihwkit
    import torchvision

    assert PINS, f"Python {python_version()} has no pinned stack"
    assert aihwkit.__version__ == PINS["aihwkit"]
    assert torch.__version__.split("+")[0] == PINS["torch"]
    assert torchvision.__version__.split("+")[0] == PINS["torchvision"]


@pytest.mark.parametrize("config", ["InferenceRPUConfig", "TorchInferenceRPUConfig"])
def test_compiled_and_torch_tiles_compute_the_matmul_on_this_stack(config: str) -> None:
    """An exact (is_perfect) forward through a 2x2 tile grid equals x W^T + b, and set_weights/get_weights
    round-trip: a torch the compiled tiles were not built for fails here ('weights must be a CPU tensor',
    undefined symbols) or gives wrong numbers."""
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator import configs

    rpu = getattr(configs, config)()
    rpu.forward.is_perfect = True
    rpu.mapping.max_input_size = 40
    rpu.mapping.max_output_size = 12
    layer = AnalogLinear(70, 20, bias=True, rpu_config=rpu).eval()
    gen = torch.Generator().manual_seed(1)
    weight, bias = torch.randn(20, 70, generator=gen) * 0.1, torch.randn(20, generator=gen)
    layer.set_weights(weight, bias)
    got_w, got_b = layer.get_weights()
    assert torch.allclose(got_w, weight, atol=1e-6) and torch.allclose(got_b, bias, atol=1e-6)
    assert len(list(layer.analog_tiles())) == 4
    kind = {type(t).__name__ for t in layer.analog_tiles()}
    assert kind == {"InferenceTile" if config == "InferenceRPUConfig" else "TorchInferenceTile"}
    x = torch.randn(5, 70, generator=gen)
    with torch.no_grad():
        assert torch.allclose(layer(x), torch.nn.functional.linear(x, weight, bias), atol=1e-5)


def test_doctor_reports_this_stack(capsys) -> None:
    from tsb_aihw.cli.main import main

    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"aihwkit version: installed {PINS['aihwkit']}" in out
    assert "InferenceTile ran a forward pass" in out and "TorchInferenceTile ran a forward pass" in out
    assert check_stack().ok


# Measured identically (to these 9 digits; the full tensors are bit-identical) on Python 3.11 / aihwkit 1.1.0 /
# torch 2.10.0 and Python 3.13 / aihwkit 1.2.0 / torch 2.14.1: docs/devices.md, section 8.
SAME_ON_BOTH_STACKS = {
    "pcm programmed": 1670.88814, "pcm drifted": 1644.82187, "pcm forward": 34.3056651, "pcm fast exact": 34.3056652,
    "rram programmed": 1697.61352, "rram drifted": 1697.56835, "rram forward": 33.803555,
    "rram fast exact": 33.8035547, "nvcim-gaussian programmed": 2581.86861, "nvcim-gaussian drifted": 2581.86861,
    "nvcim-gaussian forward": 60.467659, "nvcim-gaussian fast exact": 60.4676597,
}


def test_same_physics_on_every_stack() -> None:
    """Fixed weights and seeds: programming, one day of drift, read-back, AIHWKit's forward and the fast path's
    exact forward give the numbers both stacks gave (sums of |values|; 1e-6 relative leaves room for another
    CPU's float kernels, not for another noise draw or model)."""
    from tsb_aihw.analog import read_back, to_analog
    from tsb_aihw.analog.fast_eval import fast_forward
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model, insert_tsb

    gen = torch.Generator().manual_seed(0)
    base = insert_tsb(get_model("lenet3", in_channels=1, width=0.5)).eval()
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    x = torch.randn(16, 1, 32, 32, generator=gen)
    got = {}
    for name in ("pcm", "rram", "nvcim-gaussian"):
        torch.manual_seed(1)
        chip = to_analog(base, load_preset(name), verify="none")
        chip.program_analog_weights()
        got[f"{name} programmed"] = sum(v.double().abs().sum().item() for v in read_back(chip, t=None).values())
        chip.drift_analog_weights(86400.0)
        got[f"{name} drifted"] = sum(v.double().abs().sum().item() for v in read_back(chip, t=None).values())
        with torch.no_grad():
            torch.manual_seed(3)
            got[f"{name} forward"] = chip(x).double().abs().sum().item()
            with fast_forward(chip, "exact"):
                torch.manual_seed(3)
                got[f"{name} fast exact"] = chip(x).double().abs().sum().item()
    assert got == pytest.approx(SAME_ON_BOTH_STACKS, rel=1e-6)
