"""``tsb-aihw claims``: the claims under every definition from a committed study, as the committed file holds them."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsb_aihw.cli.claims import definitions_table
from tsb_aihw.cli.main import main
from tsb_aihw.records import ClaimsFile, load_record

ROOT = Path(__file__).resolve().parents[1]
STUDY = "results/cifar10-vgg8-sigma0.2"


def test_claims_of_a_committed_study_are_the_committed_file(tmp_path: Path, monkeypatch, capsys) -> None:
    """Re-scored in a copy, the study's claims equal the committed claims_by_definition.json (its command aside)."""
    (tmp_path / STUDY).mkdir(parents=True)
    shutil.copy(ROOT / STUDY / "results.json", tmp_path / STUDY / "results.json")
    monkeypatch.chdir(tmp_path)
    assert main(["claims", STUDY]) == 0
    got = json.loads((tmp_path / STUDY / "claims_by_definition.json").read_text())
    want = json.loads((ROOT / STUDY / "claims_by_definition.json").read_text())
    assert got.pop("command") == f"tsb-aihw claims {STUDY}"
    want.pop("command")
    assert got == want
    table = capsys.readouterr().out
    assert "one_reference" in table and "vanilla_baseline" in table
    one = want["methods"]["tsb"]["definitions"]["one_reference"]
    assert f"tsb     {one['gap_improvement']:.3g}x [{one['ci95'][0]:.3g}, {one['ci95'][1]:.3g}]" in table


def test_a_frontier_table_has_a_row_per_budget_and_method() -> None:
    path = ROOT / "results/frontier-cifar10-vgg8-sigma0.2/claims_by_definition.json"
    data = json.loads(path.read_text())
    lines = definitions_table(load_record(ClaimsFile, data, str(path))).splitlines()
    rows = [f"{b}/{m}" for b, ms in data["budgets"].items() for m in ms]
    assert [line.split()[0] for line in lines[2:]] == rows and "n/a" in lines[2]


def test_a_folder_without_results_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["claims", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds no results.json or frontier.json" in err


@pytest.mark.parametrize("args", [[STUDY]])
def test_python_m_names_the_subcommand(args: list[str]) -> None:
    """The old spelling does not run a second copy of the command: it says which one to use, and fails."""
    proc = subprocess.run([sys.executable, "-m", "tsb_aihw.pipeline.definitions", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "tsb-aihw claims" in proc.stderr
