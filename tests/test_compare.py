"""``tsb-aihw compare``: paired per-chip differences between committed results, matched by chip fingerprint."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from tsb_aihw.cli.main import main
from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.records.pairing import load_chip_accuracies, paired_difference

BUDGET = Path("results/block-budget-cifar10-vgg8-sigma0.2")


def chip_column(path: Path, value: str) -> list[float]:
    rows = [r for r in csv.DictReader(path.open()) if r["method"] == "tsb" and r["axis_value"] == value]
    return [float(r["accuracy"]) for r in sorted(rows, key=lambda r: int(r["chip"]))]


def test_sweep_points_pair_chip_by_chip() -> None:
    res = paired_difference(load_chip_accuracies(f"{BUDGET}/cosine/sweep.json#2|tsb"),
                            load_chip_accuracies(f"{BUDGET}/epochs#5|tsb"))
    a, b = chip_column(BUDGET / "cosine/sweep_chips.csv", "2"), chip_column(BUDGET / "epochs/sweep_chips.csv", "5")
    diffs = [x - y for x, y in zip(a, b)]
    assert res.difference.n == 20 and res.difference.mean == pytest.approx(statistics.mean(diffs), abs=1e-12)
    assert res.difference.std == pytest.approx(statistics.stdev(diffs), abs=1e-12)
    assert res.a_better == sum(d > 0 for d in diffs)
    assert res.difference.ci95_low < res.difference.mean < res.difference.ci95_high


def test_the_same_cell_in_a_study_and_a_sweep_differs_by_nothing() -> None:
    """(b) one-shot on the same chips, once in the study and once in a sweep (another CPU): 0 on every chip."""
    res = paired_difference(load_chip_accuracies(f"{BUDGET}/epochs#5|full_noise_injection"),
                            load_chip_accuracies("results/cifar10-vgg8-sigma0.2#full_noise_injection"))
    assert res.difference.n == 20 and res.difference.min == res.difference.max == 0.0 and res.a_better == 0


def test_a_frontier_budget_and_method_are_selected() -> None:
    f = "results/frontier-cifar10-vgg8-sigma0.2"
    res = paired_difference(load_chip_accuracies(f"{f}#0.2/tsb_bn"), load_chip_accuracies(f"{f}#0.2/tsb"))
    assert res.difference.n == 20 and res.difference.ci95_low > 0  # BN first is better, paired (docs/results.md)


@pytest.mark.parametrize("a, b, message", [
    ("results/frontier-cifar10-vgg8-sigma0.1#0.2/tsb", "results/cifar10-vgg8-sigma0.2#tsb", "not on the same chips"),
    ("results/cifar10-vgg8-sigma0.2#tsbx", "results/cifar10-vgg8-sigma0.2#tsb", "no method 'tsbx'"),
    ("results/cifar10-vgg8-sigma0.2", "results/cifar10-vgg8-sigma0.2#tsb", "name what to compare after '#'"),
    (f"{BUDGET}/cosine#7|tsb", "results/cifar10-vgg8-sigma0.2#tsb", "no sweep point '7|tsb'"),
    ("results/frontier-cifar10-vgg8-sigma0.2#tsb", "results/cifar10-vgg8-sigma0.2#tsb", "BUDGET/METHOD"),
    ("results/no-such-study#tsb", "results/cifar10-vgg8-sigma0.2#tsb", "no result file"),
    (f"{BUDGET}#tsb", "results/cifar10-vgg8-sigma0.2#tsb", "none of results.json"),
])
def test_bad_selections_are_one_clear_line(a: str, b: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|").replace("(", r"\(")):
        paired_difference(load_chip_accuracies(a), load_chip_accuracies(b))


def test_cli_prints_the_paired_difference(capsys) -> None:
    assert main(["compare", f"{BUDGET}/cosine#2|tsb", f"{BUDGET}/epochs#5|tsb"]) == 0
    out = capsys.readouterr().out
    assert "A - B over 20 chips:" in out and "95% t-CI" in out
    assert main(["compare", f"{BUDGET}/cosine#2|tsb", "results/frontier-cifar10-vgg8-sigma0.1#0.2/tsb"]) == 2
    assert "not on the same chips" in capsys.readouterr().err


def test_a_damaged_result_file_is_one_clear_line(tmp_path) -> None:
    (tmp_path / "results.json").write_text('{"methods": ')
    with pytest.raises(TSBError, match="is not valid JSON"):
        load_chip_accuracies(f"{tmp_path}#tsb")


@pytest.mark.parametrize("value, message", [(7.5, r"per_chip\[3\]\[0\] = 7\.5 is out of range"),
                                            (-3.0, r"per_chip\[3\]\[0\] = -3\.0 is out of range"),
                                            ("0.8", r"per_chip\[3\]\[0\] = '0\.8' has the wrong type")])
def test_an_impossible_stored_accuracy_is_refused(tmp_path, capsys, value, message) -> None:
    """An edited file cannot report a +211 pp difference: every number read back is checked (issue 33)."""
    data = json.loads(Path("results/cifar10-vgg8-sigma0.2/results.json").read_text())
    data["methods"]["tsb"]["per_chip"][3][0] = value
    folder = tmp_path / "edited#1"  # a '#' in a folder's name is part of the path, not the selector
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(TSBError, match=message):
        load_chip_accuracies(f"{folder}#tsb")
    assert main(["compare", f"{folder}#tsb", "results/cifar10-vgg8-sigma0.2#tsb"]) == 2
    err = capsys.readouterr().err
    assert "edited or damaged" in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_file_that_is_not_a_result_is_refused(tmp_path) -> None:
    (tmp_path / "store.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not a result file"):
        load_chip_accuracies(f"{tmp_path / 'store.json'}#tsb")
