"""Sweeps: outputs, real effect of the axis, resume after an interruption (in-process and a killed process)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import study_config_from_dict
import tsb_aihw.pipeline.tasks as tasks_module
from tsb_aihw.sweeps import SweepAxis, load_sweep, run_sweep

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = tiny_study(selective={"methods": ["magnitude"]})
FRACTIONS = [0.0, 0.01, 1.0]


class Stop(Exception):
    pass


def _cfg(**over):
    return study_config_from_dict({**TINY, **over})


def test_fraction_sweep_writes_results_and_resumes_after_interruption(tmp_path, monkeypatch) -> None:
    """Interrupt after 3 cells, re-run: finished cells are not recomputed and the result equals a clean run."""
    full = run_sweep(_cfg(), "verified_fraction", FRACTIONS, tmp_path / "clean", progress=False)
    # points: 0 -> (b) one-shot, TSB's fraction and 0.01 -> magnitude selective, 1 -> full verify, + TSB point
    methods = [p.method for p in full.points]
    assert methods[0] == "full_noise_injection" and "full_verify" in methods and methods[-1] == "tsb"
    assert sum(m.startswith("selective_verify/magnitude@") for m in methods) == 2  # 0.01 and TSB's fraction
    tsb = full.points[-1]
    assert tsb.role == "point" and 0 < tsb.verified_fraction < 0.05
    assert tsb.axis_value == pytest.approx(full.record.tsb.verified_fraction)
    total = len(full.points) * 2

    saved = json.loads((tmp_path / "clean" / "sweep.json").read_text())
    assert saved["seed"] == 3 and saved["config"]["chips"] == 2 and "aihwkit" in saved["provenance"]["versions"]
    assert "trained once" in saved["training_note"]
    for p in saved["points"]:
        assert len(p["per_chip"]) == 2 and set(p["accuracy"]["0s"]) >= {"mean", "std", "ci95_low", "ci95_high"}
    assert saved["points"][methods.index("full_verify")]["verified_fraction"] == 1.0
    rows = (tmp_path / "clean" / "sweep.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(full.points)
    for ext in ("png", "pdf"):
        assert (tmp_path / "clean" / f"accuracy_vs_verified_fraction.{ext}").stat().st_size > 1000

    out = tmp_path / "interrupted"
    original = tasks_module.deploy_cell
    seen = []

    def stop_at_the_fourth(spec, chip, models, preset, **kw):
        if len(seen) == 3:
            raise Stop
        seen.append((spec.key, chip))
        return original(spec, chip, models, preset, **kw)

    monkeypatch.setattr(tasks_module, "deploy_cell", stop_at_the_fourth)
    with pytest.raises(Stop):
        run_sweep(_cfg(), "verified_fraction", FRACTIONS, out, progress=False)
    assert len(json.loads((out / "store.json").read_text())["cells"]) == 3
    assert not (out / "sweep.json").exists()

    calls = []

    def counting(spec, chip, models, preset, **kw):
        calls.append((spec.key, chip))
        return original(spec, chip, models, preset, **kw)

    monkeypatch.setattr(tasks_module, "deploy_cell", counting)
    resumed = run_sweep(_cfg(), "verified_fraction", FRACTIONS, out, progress=False)
    assert len(calls) == total - 3  # only the unfinished cells ran
    assert not set(seen) & set(calls)
    assert resumed.accuracies() == full.accuracies()  # equal to the uninterrupted run
    assert resumed.run_info["cells_reused"] == 3
    from tsb_aihw.utils.timing import without_timing

    clean_json = json.loads((tmp_path / "clean" / "sweep.json").read_text())
    assert without_timing(json.loads((out / "sweep.json").read_text())) == without_timing(clean_json)
    # adding a chip later reuses every finished cell
    calls.clear()
    more = run_sweep(_cfg(chips=3), "verified_fraction", FRACTIONS, out, progress=False, plot=False)
    assert len(calls) == len(full.points) and all(c == 2 for _, c in calls)
    assert [p.per_chip[:2] for p in more.points] == [p.per_chip for p in full.points]
    assert load_sweep(out).accuracies() == more.accuracies()


def test_sigma_sweep_accuracy_falls_with_sigma_and_reuses_training(tmp_path) -> None:
    res = run_sweep(_cfg(methods=["full_noise_injection", "full_verify"]), "sigma", [0.02, 0.6], tmp_path,
                    chips=3, progress=False)
    acc = {(p.axis_value, p.method): p.accuracy["0s"].mean for p in res.points}
    assert acc[(0.6, "full_noise_injection")] < acc[(0.02, "full_noise_injection")] - 0.1  # the device matters
    assert acc[(0.6, "full_verify")] > acc[(0.6, "full_noise_injection")]  # write-verify repairs it
    assert {p.overrides["noise.sigma"] for p in res.points} == {0.02, 0.6}
    assert sorted(f.name for f in (tmp_path / "checkpoints").iterdir()) == ["backbone_early-1ep.pt", "backbone_full.pt"]
    assert (tmp_path / "accuracy_vs_sigma.png").is_file()


@pytest.mark.parametrize("over, axis, values, extra, message", [
    ({"preset": "pcm"}, "sigma", [0.1], {}, "only the nvcim-gaussian"),
    ({}, "adc_bits", [4], {}, "is_perfect"),
    ({}, "verified_fraction", [0.5, 2.0], {}, r"outside \[0, 1\]"),
    ({}, "sigma", [5.0], {}, "out of range"),
    ({}, "sigma", [], {}, "no values"),
    ({}, "param", [1], {}, "needs the preset key"),
    ({}, "param", [1], {"key": "noise.nope"}, "unknown key"),
    ({}, "presets", ["no-such-preset"], {}, "unknown device preset"),
    ({}, "volume", [1], {}, "unknown sweep kind"),
    ({}, "block", [1], {}, "choose --key block.epochs"),
    ({}, "block", [1], {"key": "block.where"}, "not one"),
    ({}, "block", [4096], {"key": "block.k"}, "divides no site width"),
    ({}, "block", [0], {"key": "block.k"}, "block.k"),
    ({}, "block", [16], {"key": "block.calibration_images"}, "null in the config"),
    ({"block": {"epochs": 1, "calibration_images": 64}}, "block", [100_000], {"key": "calibration_images"},
     "training split has"),
    ({}, "block", [0], {"key": "block.epochs"}, "block.epochs"),
    ({}, "block", [8], {"key": "block.batch_size"}, "batch_size = 8 sets the batches of the calibration set"),
    ({"methods": ["full_noise_injection"]}, "block", [2], {"key": "block.epochs"}, "train none"),
])
def test_bad_sweeps_fail_before_training(tmp_path, over, axis, values, extra, message) -> None:
    with pytest.raises(ConfigError, match=message):
        run_sweep(_cfg(**over), axis, values, tmp_path, progress=False, **extra)
    assert not (tmp_path / "checkpoints").exists()


def test_block_sweep_trains_each_chip_block_with_its_budget_against_the_study_reference(tmp_path, monkeypatch
                                                                                       ) -> None:
    """A block sweep: the per-chip block at each calibration-set size (its cache holds exactly that many images),
    the config's own size as the paired reference (equal to the study's TSB cells), the other methods once."""
    import tsb_aihw.pipeline.trained as trained
    from tsb_aihw.pipeline.study import run_study

    cfg = _cfg(block={"epochs": 1, "calibration_images": 96}, methods=["full_noise_injection", "tsb"])
    sizes = []
    real = trained.build_block_cache

    def recording(model, dataset, **kw):
        sizes.append(len(dataset))
        return real(model, dataset, **kw)

    monkeypatch.setattr(trained, "build_block_cache", recording)
    res = run_sweep(cfg, "block", [24, 48], tmp_path / "sweep", key="block.calibration_images", progress=False)
    assert sorted(sizes) == [24, 24, 48, 48, 96, 96]  # 2 chips x (two values + the config's own)
    curve = {p.axis_value: p for p in res.points if p.role == "curve"}
    assert sorted(curve) == [24, 48, 96] and {p.method for p in curve.values()} == {"tsb"}
    assert [p.method for p in res.points if p.role == "point"] == ["full_noise_injection"]
    assert curve[96].paired_vs_config is not None and curve[96].paired_vs_config["0s"].mean == 0.0
    assert curve[24].per_chip != curve[96].per_chip  # the budget reaches the block
    for p in curve.values():
        assert (p.block_time_s or 0) > 0 and (p.block_time_over_backbone_epoch or 0) > 0
    summary = res.record.block_budget
    assert summary is not None and summary.config_value == 96 and summary.key == "block.calibration_images"
    assert summary.cheapest_within_ci is not None and summary.cheapest_within_ci["tsb"] in (24, 48, 96)
    assert (tmp_path / "sweep" / "accuracy_vs_block_calibration_images.png").stat().st_size > 1000
    study = run_study(cfg, tmp_path / "study", progress=False)
    assert study.methods["tsb"].per_chip == curve[96].per_chip  # the reference is the study's TSB
    assert study.methods["full_noise_injection"].per_chip == res.points[-1].per_chip


def test_block_sweep_over_k_pairs_each_block_size_with_the_configs_auto_k(tmp_path) -> None:
    """k per cell: each value's chips get a block of that size (its own verified fraction), the same backbone
    chips (equal digests), and the config's ``k: auto`` as the paired reference, equal to the study's TSB."""
    from tsb_aihw.pipeline.study import run_study

    cfg = _cfg(block={"epochs": 1, "calibration_images": 96}, methods=["full_noise_injection", "tsb"])
    res = run_sweep(cfg, "block", [1, 2], tmp_path / "sweep", key="block.k", progress=False)
    auto = res.record.tsb.k
    assert res.record.block_budget is not None and res.record.block_budget.config_value == auto
    assert auto not in (1, 2)
    curve = {p.axis_value: p for p in res.points if p.role == "curve"}
    assert sorted(curve) == sorted({1, 2, auto})
    fractions = {k: p.verified_fraction for k, p in curve.items()}
    assert fractions[1] < fractions[2] < fractions[auto]  # k*k verified weights
    assert fractions[2] == pytest.approx(4 * fractions[1])
    assert curve[1].chips == curve[auto].chips  # the same programmed backbone on every chip
    paired = curve[auto].paired_vs_config
    assert paired is not None and paired["0s"].mean == 0.0 and curve[1].per_chip != curve[auto].per_chip
    study = run_study(cfg, tmp_path / "study", progress=False)
    assert study.methods["tsb"].per_chip == curve[auto].per_chip


def test_sweep_yaml_section_and_cli(tmp_path, capsys) -> None:
    from tsb_aihw.cli.main import main

    cfg = dict(TINY, sweep={"sigma": {"values": [0.05, 0.3], "methods": ["full_noise_injection"]}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    assert main(["sweep", "sigma", "--config", str(path), "--out", str(out), "--no-progress", "--no-plots"]) == 0
    data = json.loads((out / "sweep.json").read_text())
    assert [p["axis_value"] for p in data["points"]] == [0.05, 0.3]
    assert data["axis"]["values"] == [0.05, 0.3]
    assert json.loads((out / "sweep_run.json").read_text())["executor"]["executor"] == "serial"
    assert main(["sweep", "sigma", "--config", str(path), "--out", str(out), "--values", "0.05,abc"]) == 2
    assert "not a number" in capsys.readouterr().err
    path.write_text(yaml.safe_dump(dict(TINY, sweep={"sigma": {"valeus": [1]}})))
    assert main(["sweep", "sigma", "--config", str(path), "--out", str(out)]) == 2
    assert "did you mean 'sweep.sigma.values'" in capsys.readouterr().err
    assert main(["sweep", "presets", "--config", str(path).replace("s.yaml", "missing.yaml"), "--out", str(out),
                 "--presets", "pcm"]) == 2


@pytest.mark.slow
def test_killed_sweep_process_resumes_to_identical_results(tmp_path) -> None:
    """SIGKILL a `tsb-aihw sweep` process mid-run; the re-run keeps its cells and ends equal to a clean run."""
    cfg = dict(TINY, chips=4, methods=["full_noise_injection", "full_verify"])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "tsb_aihw.cli.main", "sweep", "sigma", "--config", str(path), "--out", str(out),
            "--values", "0.05,0.1,0.2,0.3,0.4", "--no-progress", "--no-plots"]
    proc = subprocess.Popen(args, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cells_file = out / "store.json"
    n_killed = 0
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if cells_file.exists():
            n_killed = len(json.loads(cells_file.read_text())["cells"])
            if n_killed >= 3:
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    kept = json.loads(cells_file.read_text())["cells"]
    assert 3 <= len(kept) < 40  # 5 sigmas x 2 methods x 4 chips

    calls = []
    original = tasks_module.deploy_cell

    def counting(spec, chip, models, preset, **kw):
        calls.append(chip)
        return original(spec, chip, models, preset, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(tasks_module, "deploy_cell", counting)
    try:
        study_cfg = study_config_from_dict(cfg)
        resumed = run_sweep(study_cfg, "sigma", [0.05, 0.1, 0.2, 0.3, 0.4], out, progress=False, plot=False)
        assert len(calls) == 40 - len(kept)
        clean = tmp_path / "clean"
        shutil.copytree(out / "checkpoints", clean / "checkpoints")  # same trained models, every cell recomputed
        calls.clear()
        again = run_sweep(study_cfg, "sigma", [0.05, 0.1, 0.2, 0.3, 0.4], clean, progress=False, plot=False)
        assert len(calls) == 40
    finally:
        mp.undo()
    assert resumed.accuracies() == again.accuracies()
    assert SweepAxis("sigma", [0.1]).override_keys() == ["noise.sigma"]


def test_a_block_k_equal_to_the_resolved_auto_k_reuses_the_configs_tsb_model(tmp_path) -> None:
    """k: auto and the number it resolves to are the same block: one model, not a second copy."""
    from dataclasses import replace

    from tsb_aihw.pipeline.tasks import StudyContext

    models = StudyContext(_cfg(), tmp_path, progress=False).models
    auto = models.blocks.block_value("k")
    tsb = models.tsb_model("early")
    assert models.tsb_model("early", replace(models.cfg.block, k=auto)) is tsb
    other = models.tsb_model("early", replace(models.cfg.block, k=auto // 2))
    assert other is not tsb and "early_tsb" in models.models and f"early_tsb_k{auto // 2}" in models.models


def test_cli_kinds_are_the_sweep_kinds() -> None:
    """sweeps.axes.KINDS owns the kind names; the CLI spells them with dashes (kept light: no sweeps import)."""
    from tsb_aihw.cli.main import build_parser
    from tsb_aihw.sweeps.axes import KINDS

    sub = next(a for a in build_parser()._subparsers._group_actions if a.dest == "command")  # type: ignore[union-attr]
    kind = next(a for a in sub.choices["sweep"]._actions if a.dest == "kind")
    assert list(kind.choices) == [k.replace("_", "-") for k in KINDS]
