"""Issue 33 ("Reliability, round three"): each kind of mishandled input or fault, tried as a user meets it.

- adopted models (``--models-from``): files outside their folder, checkpoints without weights or meta, weights
  of the wrong shape (blamed on the source, never copied into ``--out``);
- one-line refusals: a directory as ``--checkpoint``, sweep values inf/nan/1e400, an empty ``--budgets``,
  ``--out .`` with ``--move-aside``, an over-long ``--out``, ``export --to`` a file or a read-only place;
- ``compare`` of two methods of one study (paired by chip index, and says so);
- a re-run that computes nothing records the same runtime settings;
- one lock discipline: a held lock is respected by ``--move-aside`` and ``export``; two racing processes;
- content identity: a result is reused only while the image folder / checkpoint it came from is unchanged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_study

from tsb_aihw.cli.main import main
from tsb_aihw.errors import ConfigError, TSBError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STUDY = Path("results/cifar10-vgg8-sigma0.2")


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the CLI in-process: exit 2 and exactly one line on stderr (no traceback); returns that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _key(file: str = "backbone_full", **overrides) -> dict:
    from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
    from tsb_aihw.pipeline.config import study_config_from_dict

    return checkpoint_keys(study_config_from_dict(tiny_study(**overrides)), 0.1)[file]


def _lenet(width: float) -> torch.nn.Module:
    from tsb_aihw.models import get_model

    return get_model("lenet3", num_classes=10, in_channels=1, width=width, input_size=8)


# -- 1. adopted models ---------------------------------------------------------------------------------------------
def _export_folder(tmp: Path, **entry) -> Path:
    src = tmp / "exported"
    src.mkdir()
    torch.save(_lenet(0.5).state_dict(), tmp / "outside.pt")
    model = {"file": "full_noise_injection.pt", "checkpoint": "backbone_full.pt", "model": {"name": "lenet3", "num_classes": 10, "in_channels": 1, "width": 0.5, "input_size": 32}, "tsb_block": None,
             "base": None, "meta": {"train_time_s": 1.0}, "key": _key()} | entry
    (src / "models.json").write_text(json.dumps({"how_to_load": "", "dataset": None, "models": [model]}))
    return src


@pytest.mark.parametrize("entry", [{"file": "../outside.pt"}, {"file": "OUTSIDE"}, {"base": "../outside.pt"}])
def test_models_json_entries_outside_their_folder_are_refused(tmp_path: Path, entry: dict) -> None:
    from tsb_aihw.pipeline.adopt import find_trained

    if entry.get("file") == "OUTSIDE":
        entry = {"file": str(tmp_path / "outside.pt")}  # an absolute path
    src = _export_folder(tmp_path, **entry)
    torch.save(_lenet(0.5).state_dict(), src / "full_noise_injection.pt")
    with pytest.raises(TSBError, match=r"models.json: .* outside .*exported"):
        find_trained(src, "backbone_full", _key())


def test_a_models_json_that_is_not_a_mapping_is_one_line(tmp_path: Path) -> None:
    from tsb_aihw.pipeline.adopt import find_trained

    (tmp_path / "models.json").write_text("[1, 2]")
    with pytest.raises(TSBError, match=r"models.json holds list"):
        find_trained(tmp_path, "backbone_full", _key())


@pytest.mark.parametrize("drop, message", [("state_dict", r"no state_dict"), ("meta", r"meta"),
                                           ("train_time_s", r"train_time_s")])
def test_an_adopted_checkpoint_without_weights_or_meta_is_one_line(tmp_path: Path, drop: str, message: str) -> None:
    from tsb_aihw.pipeline.adopt import find_trained
    from tsb_aihw.utils.store import key_fingerprint

    blob = {"fingerprint": key_fingerprint(_key()), "key": _key(), "state_dict": _lenet(0.5).state_dict(),
            "meta": {"train_time_s": 1.0}}
    if drop == "train_time_s":
        blob["meta"] = {}
    else:
        del blob[drop]
    (tmp_path / "checkpoints").mkdir()
    torch.save(blob, tmp_path / "checkpoints" / "backbone_full.pt")
    with pytest.raises(TSBError, match=message) as exc:
        find_trained(tmp_path, "backbone_full", _key())
    assert "\n" not in str(exc.value) and "backbone_full.pt" in str(exc.value)


def test_wrong_shaped_adopted_weights_are_blamed_on_the_source_and_not_copied(tmp_path: Path) -> None:
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.study import run_study
    from tsb_aihw.utils.store import Checkpoints

    raw = tiny_study(methods=["full_noise_injection"])
    cfg = study_config_from_dict(raw)
    from tsb_aihw.devices import load_preset
    from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys

    key = checkpoint_keys(cfg, load_preset(cfg.preset).training_noise_std)["backbone_full"]
    src = tmp_path / "src"
    Checkpoints(src / "checkpoints").save("backbone_full", key, _lenet(1.0).state_dict(), {"train_time_s": 1.0})
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as exc:
        run_study(cfg, out, progress=False, models_from=[src])
    assert str(src / "checkpoints" / "backbone_full.pt") in str(exc.value) and str(out) not in str(exc.value)
    assert not (out / "checkpoints" / "backbone_full.pt").exists()  # a re-run without --models-from trains it


# -- 1. one-line refusals --------------------------------------------------------------------------------------------
def test_a_directory_as_checkpoint_is_a_directory_not_missing(tmp_path: Path, capsys) -> None:
    from tsb_aihw.utils.torchfile import read_state_dict

    with pytest.raises(ConfigError, match="is a directory, not a file"):
        read_state_dict(tmp_path)
    line = _one_line_exit_2(["drift", "--checkpoint", str(tmp_path), "--dataset", "digits", "--chips", "2",
                             "--times", "0", "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert "is a directory" in line and "does not exist" not in line


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e400", 10**400, float("nan")])
def test_non_finite_sweep_values_are_one_line(value) -> None:
    from tsb_aihw.sweeps.axes import SweepAxis

    with pytest.raises(ConfigError, match="not finite|too large"):
        SweepAxis("sigma", [value])


def test_non_finite_sweep_values_on_the_command_line(tmp_path: Path, capsys) -> None:
    line = _one_line_exit_2(["sweep", "sigma", "--config", "configs/sweeps/mnist5k-lenet3.yaml", "--values",
                             "0.1,1e400", "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert "not finite" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("budgets", ["", ","])
def test_an_empty_budget_list_is_refused_not_ignored(tmp_path: Path, capsys, budgets: str) -> None:
    line = _one_line_exit_2(["frontier", "--quick", "--budgets", budgets, "--out", str(tmp_path / "o")], capsys)
    assert "budgets" in line
    assert not (tmp_path / "o").exists()


def _config_file(tmp: Path, **overrides) -> str:
    import yaml

    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_study(methods=["full_noise_injection"], **overrides)))
    return str(path)


def test_out_dot_with_move_aside_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    from tsb_aihw.utils.store import ResultStore

    work = tmp_path / "w"
    ResultStore(work, "study", {"other": 1}).close()
    cfg = _config_file(tmp_path)
    monkeypatch.chdir(work)
    line = _one_line_exit_2(["run", "--config", cfg, "--out", ".", "--move-aside", "--no-progress"], capsys)
    assert "current directory" in line
    assert (work / "store.json").is_file() and not list(tmp_path.glob("w.moved-*"))


@pytest.mark.parametrize("shape", ["name", "path"])
def test_an_over_long_out_is_one_line(tmp_path: Path, capsys, shape: str) -> None:
    out = tmp_path / ("x" * 300) if shape == "name" else tmp_path.joinpath(*["y" * 200] * 25)
    line = _one_line_exit_2(["run", "--config", _config_file(tmp_path), "--out", str(out), "--no-progress"], capsys)
    assert "too long" in line


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[dict, Path]:
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.study import run_study

    raw = tiny_study(methods=["full_noise_injection", "tsb"], data={"name": "digits", "batch_size": 64,
                                                                  "eval_batch_size": 256, "eval_limit": 60})
    out = tmp_path_factory.mktemp("finished")
    run_study(study_config_from_dict(raw), out, progress=False)
    return raw, out


def test_export_to_an_existing_file_or_a_read_only_place_is_one_line(finished, tmp_path: Path, capsys) -> None:
    _raw, out = finished
    (tmp_path / "afile").write_text("")
    line = _one_line_exit_2(["export", "--from", str(out), "--to", str(tmp_path / "afile")], capsys)
    assert "afile" in line and "not a directory" in line
    line = _one_line_exit_2(["export", "--from", str(out), "--to", "/sys/tsb-export"], capsys)
    assert "/sys/tsb-export" in line and "not writable" in line


# -- 1. compare: two methods of one study -------------------------------------------------------------------------
def test_two_methods_of_one_study_pair_by_chip_index_and_say_so(capsys) -> None:
    from tsb_aihw.records.pairing import load_chip_accuracies, paired_difference

    a, b = load_chip_accuracies(f"{STUDY}#tsb"), load_chip_accuracies(f"{STUDY}#full_noise_injection")
    assert not set(a.chips) & set(b.chips)  # other backbones, other programmed weights: other digests
    res = paired_difference(a, b)
    assert res.paired_by == "chip index"
    data = json.loads((STUDY / "results.json").read_text())["methods"]
    diffs = [x[0] - y[0] for x, y in zip(data["tsb"]["per_chip"], data["full_noise_injection"]["per_chip"])]
    assert res.difference.n == 20 and res.difference.mean == pytest.approx(sum(diffs) / 20, abs=1e-12)
    assert main(["compare", f"{STUDY}#tsb", f"{STUDY}#full_noise_injection"]) == 0
    assert "chip index" in capsys.readouterr().out


def test_results_of_different_files_are_still_paired_only_by_fingerprint() -> None:
    from tsb_aihw.records.pairing import load_chip_accuracies, paired_difference

    with pytest.raises(ConfigError, match="not on the same chips"):
        paired_difference(load_chip_accuracies("results/frontier-cifar10-vgg8-sigma0.1#0.2/tsb"),
                          load_chip_accuracies(f"{STUDY}#full_noise_injection"))


# -- 1. a re-run that computes nothing records the same runtime settings --------------------------------------------
def test_a_rerun_that_computes_nothing_records_deterministic_algorithms(finished) -> None:
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.study import run_study

    raw, out = finished
    first = json.loads((out / "results.json").read_text())["provenance"]["runtime"]
    assert first["deterministic_algorithms"] is True
    torch.use_deterministic_algorithms(False)  # a fresh process: nothing has set it yet
    try:
        again = run_study(study_config_from_dict(raw), out, progress=False)
    finally:
        torch.use_deterministic_algorithms(True, warn_only=True)
    assert again.provenance.to_dict()["runtime"] == first


# -- 2. one lock discipline -------------------------------------------------------------------------------------------
HOLD = ("import sys, time\nfrom tsb_aihw.utils.store import ResultStore\n"
        "ResultStore(sys.argv[1], 'study', {'seed': 1})\nprint('held', flush=True)\ntime.sleep(float(sys.argv[2]))\n")


def _holder(out: Path, seconds: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(seconds)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_move_aside_refuses_an_out_whose_lock_is_held(tmp_path: Path) -> None:
    from tsb_aihw.utils.store import ResultStore

    out = tmp_path / "out"
    proc = _holder(out)
    try:
        with pytest.raises(ConfigError, match=rf"in use by another tsb-aihw run \(pid {proc.pid}\)"):
            ResultStore(out, "study", {"seed": 2}, move_aside=True)
        assert (out / "store.json").is_file() and not list(tmp_path.glob("out.moved-*"))
        assert json.loads((out / "store.json").read_text())["identity"] == {"seed": 1}
    finally:
        proc.kill()
        proc.wait()
    ResultStore(out, "study", {"seed": 2}, move_aside=True).close()  # the holder is gone: now it moves
    assert len(list(tmp_path.glob("out.moved-*"))) == 1


def test_export_respects_a_held_lock(finished, tmp_path: Path) -> None:
    from tsb_aihw.pipeline.export import export_study

    _raw, out = finished
    busy = tmp_path / "busy"
    proc = _holder(busy)
    try:
        (busy / "keep.txt").write_text("x")
        with pytest.raises(ConfigError, match="in use by another tsb-aihw run"):
            export_study(out, busy, move_aside=True)  # moving a live run's --out aside
        assert (busy / "keep.txt").exists() and not list(tmp_path.glob("busy.moved-*"))
        with pytest.raises(ConfigError, match="in use by another tsb-aihw run"):
            export_study(busy, tmp_path / "dest")  # exporting a live run
    finally:
        proc.kill()
        proc.wait()


RACE = ("import sys, time\nfrom tsb_aihw.errors import ConfigError\nfrom tsb_aihw.utils.store import ResultStore\n"
        "while time.time() < float(sys.argv[2]): pass\n"
        "try:\n    ResultStore(sys.argv[1], 'study', {'seed': int(sys.argv[3])}, move_aside=True)\n"
        "except ConfigError as exc:\n    print('refused', exc, flush=True)\n    sys.exit(3)\n"
        "print('won', flush=True)\ntime.sleep(3)\n")


@pytest.mark.parametrize("lag", [0.0, 0.3])
def test_two_processes_racing_for_one_out_never_share_it(tmp_path: Path, lag: float) -> None:
    """Two runs of different configs start on one --out with --move-aside, at the same instant or the second a
    moment later (the first has written its store.json): one wins, the other is refused, never both writing and
    never one moving the other's live directory away."""
    out = tmp_path / "out"
    start = time.time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(out), str(start + i * lag), str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, seed in enumerate((1, 2))]
    outputs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outputs
    winner = next(i for i, p in enumerate(procs) if p.returncode == 0)
    assert json.loads((out / "store.json").read_text())["identity"] == {"seed": (1, 2)[winner]}
    assert "in use by another tsb-aihw run" in outputs[1 - winner][0]
    assert not list(tmp_path.glob("out.moved-*"))

# -- 3. content identity: a result is reused only while what it came from is unchanged -------------------------------
def _image_tree(root: Path, n: int = 12) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, cls in enumerate(("ant", "bee")):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8) + np.uint8(120 * c)
            Image.fromarray(pixels).save(root / cls / f"{i:02d}.png")
    return root


def _refuse_training(monkeypatch) -> None:
    def refuse(*_a, **_k):
        raise AssertionError("trained again: the finished result was not reused")

    monkeypatch.setattr("tsb_aihw.pipeline.trained.train_noise_injection", refuse)


def test_an_image_folder_changed_in_place_meets_its_results_as_one_line(tmp_path: Path, data_cache: Path,
                                                                       monkeypatch) -> None:
    from tsb_aihw.data.sources import imagefolder
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.study import run_study
    from tsb_aihw.utils.timing import result_differences

    tree = _image_tree(tmp_path / "tree")
    raw = tiny_study(methods=["full_noise_injection"], data={"name": f"imagefolder:{tree}", "batch_size": 8,
                                                              "eval_batch_size": 64})
    out = tmp_path / "out"
    first = run_study(study_config_from_dict(raw), out, progress=False)
    store = json.loads((out / "store.json").read_text())
    assert store["identity"]["inputs"]["data"]["path"] == str(tree.resolve())

    with monkeypatch.context() as mp:  # a re-run computes nothing and gives the same bits
        _refuse_training(mp)
        again = run_study(study_config_from_dict(raw), out, progress=False)
        assert result_differences(first.to_dict(), again.to_dict()) == []
        for f in tree.rglob("*.png"):  # a touch (or a copy) keeps the content: still reused
            os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
        imagefolder.clear_memo()
        run_study(study_config_from_dict(raw), out, progress=False)

    a, b = tree / "ant" / "00.png", tree / "bee" / "00.png"  # two classes' images swapped in place
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    imagefolder.clear_memo()
    with pytest.raises(ConfigError, match=rf"holds results computed from other content of data {tree.resolve()} "
                                          r"\(changed since"):
        run_study(study_config_from_dict(raw), out, progress=False)
    # nor is the old backbone adopted (--models-from) for the new content
    from tsb_aihw.devices import load_preset
    from tsb_aihw.pipeline.adopt import find_trained
    from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys

    cfg = study_config_from_dict(raw)
    key = checkpoint_keys(cfg, load_preset(cfg.preset).training_noise_std)["backbone_full"]
    assert key["data"]["content"] != store["identity"]["inputs"]["data"]["sha256"]
    said = find_trained(out, "backbone_full", key)
    assert isinstance(said, str) and "differs in: data.content" in said


def test_a_clone_in_another_place_resumes_the_same_results(tmp_path: Path, data_cache: Path, monkeypatch) -> None:
    """An input is compared by content, not by where it lies: the whole project (data at a relative path beside
    it, and its results) copied to another place resumes without computing anything, as CI's clone does."""
    import shutil

    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.study import run_study
    from tsb_aihw.utils.timing import result_differences

    here = tmp_path / "here"
    _image_tree(here / "tree")
    raw = tiny_study(methods=["full_noise_injection"], data={"name": "imagefolder:tree", "batch_size": 8,
                                                              "eval_batch_size": 64})
    monkeypatch.chdir(here)
    first = run_study(study_config_from_dict(raw), here / "out", progress=False)
    there = tmp_path / "there"
    shutil.copytree(here, there, ignore=shutil.ignore_patterns(".tsb-aihw.lock"))
    monkeypatch.chdir(there)
    with monkeypatch.context() as mp:
        _refuse_training(mp)
        again = run_study(study_config_from_dict(raw), there / "out", progress=False)
    assert result_differences(first.to_dict(), again.to_dict()) == []
    store = json.loads((there / "out" / "store.json").read_text())
    assert store["identity"]["inputs"]["data"]["path"] == str((here / "tree").resolve())  # where they were computed


def test_a_checkpoint_rewritten_in_place_meets_its_results_as_one_line(tmp_path: Path) -> None:
    from tsb_aihw.pipeline.config import DriftConfig, config_from
    from tsb_aihw.pipeline.drift_study import run_drift_study

    ckpt = tmp_path / "model.pt"
    torch.manual_seed(0)
    torch.save(_lenet(0.5).state_dict(), ckpt)
    cfg = config_from(DriftConfig, {}, "", {"model": "lenet3", "width": 0.5, "dataset": "digits", "chips": 2,
                                            "checkpoint": str(ckpt), "times": ["0"], "eval_limit": 30,
                                            "presets": ["pcm"]})
    out = tmp_path / "out"
    first = run_drift_study(cfg, out, progress=False)
    assert run_drift_study(cfg, out, progress=False).presets["pcm"].accuracies == first.presets["pcm"].accuracies
    torch.manual_seed(1)
    torch.save(_lenet(0.5).state_dict(), ckpt)  # other weights at the same path
    with pytest.raises(ConfigError, match=rf"other content of checkpoint {ckpt}"):
        run_drift_study(cfg, out, progress=False)
