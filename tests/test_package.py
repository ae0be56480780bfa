"""The package surface: every lazily exported name resolves, and the stack self-check passes."""
from __future__ import annotations

import pytest

import tsb_aihw
from tsb_aihw.stack import check_stack


@pytest.mark.parametrize("name", sorted(tsb_aihw._LAZY))
def test_public_name_resolves(name: str) -> None:
    assert callable(getattr(tsb_aihw, name))


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        tsb_aihw.no_such_thing  # noqa: B018


def test_stack_self_check_runs_both_tile_kinds() -> None:
    """A broken torch/aihwkit pairing fails here loudly on either stack (e.g. aihwkit 1.1.0 with torch 2.13: 'weights
    must be a CPU tensor'); the versions checked are this interpreter's pins (tests/test_stack.py)."""
    rep = check_stack()
    assert rep.ok, rep.format()
    names = {c.name for c in rep.checks}
    assert {"InferenceRPUConfig forward", "TorchInferenceRPUConfig forward"} <= names


def test_doctor_cli_exit_code(capsys) -> None:
    from tsb_aihw.cli.main import main

    assert main(["doctor"]) == 0
    assert "InferenceTile ran a forward pass" in capsys.readouterr().out
