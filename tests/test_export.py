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
    assert json.loads((dest / "results.json").read_text())["methods"].keys() == results.methods.keys()
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
            assert evaluate_accuracy(model, data.test) == pytest.approx(results.reference_accuracy)


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


# -- models_from: a later run takes the trained models instead of re-training them ---------------------------------
def _no_training(monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("trained although --models-from holds this model")

    monkeypatch.setattr("tsb_aihw.pipeline.trained.train_noise_injection", refuse)


def _cells(out) -> dict:
    return json.loads((out / "store.json").read_text())["cells"]


@pytest.mark.parametrize("source", ["run", "export", "export_without_keys"])
def test_models_from_takes_the_same_models_and_gives_the_same_cells(study, tmp_path, monkeypatch, source) -> None:
    raw, out, _results = study
    src = out
    if source != "run":
        src = tmp_path / "exported"
        export_study(out, src)
        if source == "export_without_keys":  # an export made before models.json recorded keys
            index = json.loads((src / "models.json").read_text())
            for m in index["models"]:
                assert m.pop("key") is not None
            (src / "models.json").write_text(json.dumps(index))
    _no_training(monkeypatch)  # the fixed clean block's training goes through fit_block, not this: patch it too
    monkeypatch.setattr("tsb_aihw.pipeline.trained.BlockFitter.fit_block",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("fixed block re-trained")))
    raw2 = {**raw, "methods": ["full_noise_injection", "tsb_clean"]}
    again = tmp_path / "again"
    run_study(study_config_from_dict(raw2), again, progress=False, models_from=[src])
    mine = _cells(again)
    theirs = _cells(out)
    assert mine and set(mine) <= set(theirs)  # the same cell keys
    assert all(theirs[k]["acc"] == v["acc"] for k, v in mine.items())  # bit-identical chip accuracies
    meta = torch.load(again / "checkpoints" / "backbone_full.pt")["meta"]
    assert meta["adopted_from"].startswith(str(src)) and meta["train_time_s"] > 0  # its training time is kept


def test_models_from_trains_what_was_trained_for_another_config(study, tmp_path, capsys) -> None:
    raw, out, _results = study
    other = {**raw, "seed": raw.get("seed", 0) + 1, "methods": ["full_noise_injection"]}
    run_study(study_config_from_dict(other), tmp_path / "o", progress=False, models_from=[out])
    said = capsys.readouterr().out
    assert "trained for another configuration (differs in: seed)" in said and "training it here" in said
    assert "adopted_from" not in torch.load(tmp_path / "o" / "checkpoints" / "backbone_full.pt")["meta"]


def test_models_from_a_missing_folder_is_one_line_before_training(tmp_path, capsys) -> None:
    assert main(["frontier", "--config", "configs/frontier/mnist5k-lenet3.yaml", "--quick", "--out",
                 str(tmp_path / "x"), "--models-from", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--models-from" in err[0] and "no such directory" in err[0]
    assert not (tmp_path / "x").exists()


def test_models_from_a_missing_folder_is_refused_by_the_api_before_out_is_made(study, tmp_path) -> None:
    from tsb_aihw.errors import ConfigError

    raw, _out, _results = study
    with pytest.raises(ConfigError, match="no such directory"):
        run_study(study_config_from_dict(raw), tmp_path / "y", progress=False, models_from=[tmp_path / "nowhere"])
    assert not (tmp_path / "y").exists()
