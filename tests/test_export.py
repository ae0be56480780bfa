"""`tsb-aihw export`: a finished study's files and plain state dicts that rebuild the trained models."""
from __future__ import annotations

import json

import pytest
import torch

from tsb_aihw.cli.main import main
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.models import get_model, insert_tsb
from tsb_aihw.pipeline.config import study_config_from_dict
from tsb_aihw.pipeline.export import export_study
from tsb_aihw.pipeline.study import run_study
from tsb_aihw.pipeline.trained import load_study_data

from helpers import tiny_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    raw = tiny_study(methods=["full_noise_injection", "tsb_clean", "tsb"])
    out = tmp_path_factory.mktemp("study")
    return raw, out, run_study(study_config_from_dict(raw), out, progress=False)


def test_export_writes_results_and_loadable_state_dicts(study, tmp_path) -> None:
    raw, out, results = study
    dest = tmp_path / "results" / "tiny"
    assert main(["export", "--from", str(out), "--to", str(dest)]) == 0
    assert json.loads((dest / "results.json").read_text())["methods"].keys() == results["methods"].keys()
    assert any(dest.glob("*.csv"))
    index = json.loads((dest / "models.json").read_text())
    files = {m["file"] for m in index["models"]}
    assert {"full_noise_injection.pt", "backbone_early-1ep.pt", "tsb_clean-1ep.pt"} <= files
    data = load_study_data(study_config_from_dict(raw))
    for entry in index["models"]:
        model = get_model(**entry["model"])
        state = torch.load(dest / entry["file"])
        if entry["tsb_block"]:
            assert set(state) == {"tsb.conv.weight"} and entry["base"] in files
            model = insert_tsb(model, **entry["tsb_block"])
            state = {**torch.load(dest / entry["base"]), **state}
        model.load_state_dict(state)  # plain state dicts, loaded strictly
        if entry["file"] == "full_noise_injection.pt":
            assert evaluate_accuracy(model, data.test) == pytest.approx(results["reference_accuracy"])


def test_export_never_replaces_an_earlier_export(study, tmp_path) -> None:
    _raw, out, _results = study
    dest = tmp_path / "d"
    export_study(out, dest)
    with pytest.raises(ConfigError, match="not empty"):
        export_study(out, dest)
    export_study(out, dest, move_aside=True)
    assert len(list(tmp_path.glob("d.moved-*"))) == 1 and (dest / "results.json").exists()


def test_export_of_a_run_takes_its_report(tmp_path) -> None:
    from tsb_aihw.pipeline.studies import run_studies

    out = tmp_path / "run"
    run_studies(out, [study_config_from_dict(tiny_study(methods=["full_noise_injection"]))], command="test",
                progress=False)
    export_study(out, tmp_path / "d")
    assert (tmp_path / "d" / "report.md").read_text() == (out / "report.md").read_text()
    assert (tmp_path / "d" / "full_noise_injection.pt").exists()


def test_export_refuses_a_folder_without_a_study(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no finished study"):
        export_study(tmp_path, tmp_path / "x")
