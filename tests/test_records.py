"""Typed results: every committed results file round-trips through its record unchanged, and a damaged one is
one line naming the file and the key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tsb_aihw.errors import TSBError
from tsb_aihw.records import (
    ClaimsFile,
    DriftCell,
    FrontierResult,
    ModelIndex,
    RefreshCell,
    StudyResult,
    SweepRecord,
    load_record,
    read_record,
)
from tsb_aihw.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parents[1] / "results"
RECORDS = {"results.json": StudyResult, "sweep.json": SweepRecord, "frontier.json": FrontierResult,
           "models.json": ModelIndex, "claims_by_definition.json": ClaimsFile}
COMMITTED = sorted(p for name in RECORDS for p in RESULTS.rglob(name))


def test_every_kind_of_committed_result_is_covered() -> None:
    assert {p.name for p in COMMITTED} == set(RECORDS) and len(COMMITTED) >= 20


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_result_round_trips_byte_for_byte(path: Path, tmp_path: Path) -> None:
    record = read_record(RECORDS[path.name], path)
    out = atomic_write_json(tmp_path / path.name, record.to_dict())  # the writer every command uses
    assert out.read_bytes() == path.read_bytes()


def _study() -> dict:
    return json.loads((RESULTS / "cifar10-vgg8" / "results.json").read_text())


def _tsb(d: dict) -> dict:
    return d["methods"]["tsb"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: _tsb(d)["per_chip"][3].__setitem__(0, 7.5), r"methods\.tsb\.per_chip\[3\]\[0\] = 7\.5 is out of range"),
    (lambda d: _tsb(d)["per_chip"][0].__setitem__(0, -3.0), r"per_chip\[0\]\[0\] = -3\.0 is out of range"),
    (lambda d: _tsb(d)["per_chip"][1].__setitem__(0, "0.9"), r"per_chip\[1\]\[0\] = '0\.9' has the wrong type"),
    (lambda d: _tsb(d).pop("gap"), r"missing key 'methods\.tsb\.gap'"),
    (lambda d: _tsb(d)["accuracy"]["0s"].pop("mean"), r"methods\.tsb\.accuracy\.0s = .* is not a summary"),
    (lambda d: d.__setitem__("reference_accuracy", 1.5), r"reference_accuracy = 1\.5 is out of range"),
    (lambda d: d.__setitem__("methods", []), r"methods = \[\] has the wrong type"),
])
def test_a_damaged_result_is_one_line_naming_file_and_key(tmp_path: Path, edit, message) -> None:
    data = _study()
    edit(data)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TSBError, match=message) as info:
        read_record(StudyResult, path)
    text = str(info.value)
    assert "\n" not in text and text.startswith(str(path)) and "edited or damaged" in text


def test_cells_are_checked_on_load() -> None:
    cell = DriftCell(accuracies=[0.5, 0.25], seed=3, digest="abc")
    assert load_record(DriftCell, cell.to_dict(), "store.json") == cell
    with pytest.raises(TSBError, match=r"store\.json: missing key 'digest'"):
        load_record(DriftCell, {"accuracies": [0.5], "seed": 3}, "store.json")
    with pytest.raises(TSBError, match=r"accuracies\[0\] = 2\.0 is out of range"):
        load_record(DriftCell, {"accuracies": [2.0], "seed": 3, "digest": "abc"}, "store.json")
    with pytest.raises(TSBError, match="tsb_refresh"):
        load_record(RefreshCell, {"chip_cost": {}, "block_write0": {}, "block_train0_s": 1.0, "chip": "x",
                                  "tsb": [0.5], "refresh_events": []}, "store.json")


def test_an_exported_block_records_insert_tsbs_arguments_and_its_bias_only_when_set() -> None:
    from tsb_aihw.records import BlockArgs, load_record

    plain = {"k": 16, "residual": True, "where": "conv"}  # what every committed models.json holds
    assert load_record(BlockArgs, plain, "models.json").to_dict() == plain
    assert BlockArgs(k=4, where="conv+classifier", residual=False, bias=True).to_dict()["bias"] is True
    with pytest.raises(TSBError, match=r"models\.json: k = 0 is out of range"):
        load_record(BlockArgs, {**plain, "k": 0}, "models.json")


def test_a_sweep_axis_round_trips_through_its_record() -> None:
    from tsb_aihw.records.sweep import AxisRecord
    from tsb_aihw.sweeps.axes import SweepAxis

    for axis in (SweepAxis("sigma", [0.1, 0.35]), SweepAxis("adc_bits", [4, 8], io=["adc"]),
                 SweepAxis("verified_fraction", [0.5, 0.0], rules=["magnitude"], add_tsb_fraction=False),
                 SweepAxis("block", [512, 256], key="calibration_images")):
        rec = axis.record()
        assert load_record(AxisRecord, rec.to_dict(), "sweep.json") == rec
        assert SweepAxis.from_record(rec) == axis and rec.name == axis.name


def test_a_drift_studys_model_source_writes_only_what_it_holds() -> None:
    from tsb_aihw.records import ModelSource

    assert ModelSource(source="model.pt").to_dict() == {"source": "model.pt"}  # a given checkpoint: its path
    trained = {"source": "trained", "model": "lenet3", "width": 0.5, "dataset": "digits", "epochs": 3,
               "noise_std": 0.1, "seed": 0, "train_time_s": 2.5, "best_val_acc": 0.9}
    assert load_record(ModelSource, trained, "model.pt").to_dict() == trained
