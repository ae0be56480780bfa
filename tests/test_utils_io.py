"""Result files: readable by other users (umask, not mkstemp's 0600), a full disk loses nothing, shapes checked."""
from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from tsb_aihw.errors import TSBError
from tsb_aihw.utils import io as tio
from tsb_aihw.utils.text import short_repr


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_result_files_get_0666_minus_umask_like_open(tmp_path: Path, umask: int) -> None:
    """mkstemp makes 0600: a Dask worker or colleague running as another user could not read results."""
    old = os.umask(umask)
    try:
        tio.atomic_write_json(tmp_path / "r.json", {"a": 1})
        with tio.atomic_output(tmp_path / "p.png") as tmp:
            tmp.write_bytes(b"png")
        with open(tmp_path / "plain.txt", "w") as fh:  # what a normal open gives, for comparison
            fh.write("x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "r.json") == _mode(tmp_path / "plain.txt") == 0o666 & ~umask
    assert _mode(tmp_path / "p.png") == 0o666 & ~umask


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cells.json"
    tio.atomic_write_json(target, {"cells": {"tsb/0": [0.9]}})
    before = target.read_bytes()
    monkeypatch.setattr(tio, "_write_all", _disk_full)
    with pytest.raises(TSBError) as err:
        tio.atomic_write_json(target, {"cells": {"tsb/0": [0.9], "tsb/1": [0.8]}})
    msg = str(err.value)
    assert "\n" not in msg and str(target) in msg and "free space and re-run to resume" in msg
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.json"]  # no .cells.json.*.tmp left


def test_disk_full_while_saving_a_plot(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tsb_aihw import plots

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    plots._save(fig, tmp_path / "acc.png")
    before = (tmp_path / "acc.png").read_bytes()
    fig, ax = plt.subplots()
    ax.plot([1, 0])

    def full(path, **kw):
        Path(path).write_bytes(b"half a png")
        _disk_full()

    fig.savefig = full
    with pytest.raises(TSBError, match=r"cannot write .*acc.png: no space left on the device.*free space and re-run"):
        plots._save(fig, tmp_path / "acc.png")
    assert (tmp_path / "acc.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.pdf", "acc.png"]


def test_read_json_checks_the_shape(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"points": []}))
    assert tio.read_json(path, expect=dict) == {"points": []}
    path.write_text("null")
    with pytest.raises(TSBError, match=r"sweep.json holds NoneType None where a mapping \(JSON object\) was saved"):
        tio.read_json(path, expect=dict)
    with pytest.raises(TSBError, match="cannot read"):
        tio.read_json(tmp_path, expect=dict)  # a directory: IsADirectoryError before
    with pytest.raises(FileNotFoundError):
        tio.read_json(tmp_path / "missing.json")  # callers test for "not written yet"
    with pytest.raises(TSBError, match=r"k holds bool True where an integer"):
        tio.check_json_type(True, int, "k")


@pytest.mark.parametrize("value", [-3, 7.5, float("nan"), float("inf"), -1e-9, 1.0000001, "0.9", None, True, [0.5]])
def test_impossible_accuracies_are_refused(value) -> None:
    with pytest.raises(TSBError, match="accuracy") as err:
        tio.check_accuracy(value, "results.json: methods.tsb.acc")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, 1, 1.0])
def test_possible_accuracies_pass(value) -> None:
    assert tio.check_accuracy(value, "x") == float(value)
    assert tio.check_accuracies([value, 0.25], "x") == [float(value), 0.25]


def test_short_repr_is_bounded_and_one_line() -> None:
    nested: list = ["lol"] * 10
    for _ in range(9):  # 10**10 leaves if printed in full
        nested = [nested] * 10
    assert len(short_repr(nested)) <= 80
    assert short_repr(10**5000) == "<int with ~5001 digits>"
    assert "\n" not in short_repr("a\nb" * 1000) and len(short_repr("a\nb" * 1000)) <= 80
    loop: list = []
    loop.append(loop)
    assert short_repr(loop).startswith("[[")
    assert short_repr({"a": 1.5}) == "{'a': 1.5}"
