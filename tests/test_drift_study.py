"""`tsb-aihw drift` / run_drift_study: one command for a drift study over presets, resumable, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tsb_aihw.cli.main import main
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model
from tsb_aihw.pipeline.config import DriftConfig
from tsb_aihw.pipeline.drift_study import load_model_checkpoint, run_drift_study
from tsb_aihw.stack import PINS

BASE = ["--dataset", "digits", "--model", "lenet3", "--width", "0.25", "--epochs", "1", "--eval-limit", "100",
        "--no-progress"]
TINY = [*BASE, "--chips", "2", "--times", "0,1h,1y"]


def test_drift_command_writes_results_and_resumes(tmp_path: Path, one_torch_thread, capsys) -> None:
    out = tmp_path / "drift"
    assert main(["drift", "--out", str(out), "--preset", "pcm", "--preset", "rram", *TINY]) == 0
    table = capsys.readouterr().out
    assert "pcm" in table and "rram" in table and "1y" in table
    first = json.loads((out / "drift.json").read_text())
    assert set(first["presets"]) == {"pcm", "rram"}
    assert first["time_labels"] == ["0s", "1h", "1y"]
    for entry in first["presets"].values():
        assert len(entry["accuracies"]) == 2 and all(len(row) == 3 for row in entry["accuracies"])
        assert entry["resumed_chips"] == 0
        assert set(entry["summary"]["1y"]) >= {"mean", "std", "ci95_low", "ci95_high"}
    assert first["provenance"]["versions"]["aihwkit"] == PINS["aihwkit"]
    assert first["config"]["chips"] == 2 and first["seed"] == 0
    assert (out / "accuracy_vs_time.png").stat().st_size > 0 and (out / "accuracy_vs_time.pdf").exists()
    assert (out / "checkpoints" / "model.pt").exists() and (out / "drift_chips.csv").exists()

    assert main(["drift", "--out", str(out), "--preset", "pcm", "--preset", "rram", *TINY]) == 0
    second = json.loads((out / "drift.json").read_text())
    assert second["model_source"]["reused"] is True
    for name in ("pcm", "rram"):
        assert second["presets"][name]["resumed_chips"] == 2
        assert second["presets"][name]["accuracies"] == first["presets"][name]["accuracies"]


def test_drift_presets_share_chip_seeds_and_drift_lowers_pcm_accuracy(tmp_path: Path, one_torch_thread) -> None:
    cfg = DriftConfig(model="lenet3", width=0.5, dataset="digits", presets=["pcm"], times=[0, "1y"],
                      chips=3, train_epochs=3, eval_limit=200)
    res = run_drift_study(cfg, tmp_path, progress=False)
    pcm = res.presets["pcm"]
    assert pcm.chip_seeds == sorted(set(pcm.chip_seeds), key=pcm.chip_seeds.index)  # distinct
    # one year of PCM drift (with global drift compensation) costs accuracy on average over chips
    assert pcm.summary["1y"].mean < pcm.summary["0s"].mean


def test_drift_bad_input_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["drift", "--out", str(tmp_path / "a"), "--chips", "1", *BASE]) == 2
    assert "chips = 1 is out of range; allowed: 2 <= chips" in capsys.readouterr().err
    assert main(["drift", "--out", str(tmp_path / "b"), "--checkpoint", str(tmp_path / "nope.pt"), *TINY]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["drift", "--out", str(tmp_path / "c"), "--times", "1h,-3s", *BASE]) == 2
    assert "time" in capsys.readouterr().err


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(get_model("lenet3", width=0.5).state_dict(), path)
    load_model_checkpoint(get_model("lenet3", width=0.5), path)  # the matching one loads
    with pytest.raises(ConfigError, match="shape mismatch"):
        load_model_checkpoint(get_model("lenet3", width=0.25), path)
