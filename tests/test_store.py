"""One chip model and one result store: chip i is the same chip in every command; nothing is mixed or lost.

- chip ``i`` has bit-identical programmed weights (equal digests) in ``run``, ``drift``, ``refresh`` and
  ``sweep`` for the same preset, model and seed;
- a different configuration into a used ``--out`` is refused and nothing there changes; ``--move-aside``
  renames the old directory (nothing deleted);
- two presets with the same file stem get separate results; a preset never resumes another preset's chips;
- a mis-shaped store file gives one clear line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tsb_aihw.cli.main import main
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.pipeline.config import DriftConfig, RefreshConfig, config_from, study_config_from_dict
from tsb_aihw.pipeline.drift_study import run_drift_study
from tsb_aihw.pipeline.refresh import run_refresh_study
from tsb_aihw.pipeline.study import run_study
from tsb_aihw.sweeps import run_sweep
from tsb_aihw.utils.store import ResultStore

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PCM = tiny_study(preset="pcm", times=["1s"], methods=["full_noise_injection", "backbone_early", "tsb"],
                 data={"name": "digits", "batch_size": 64, "eval_batch_size": 256, "eval_limit": 60})


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_chip_i_is_the_same_chip_in_run_drift_refresh_and_sweep(tmp_path: Path) -> None:
    run = run_study(study_config_from_dict(PCM), tmp_path / "run", progress=False)
    full, early, tsb = (run.methods[m].chips for m in ("full_noise_injection", "backbone_early", "tsb"))
    assert len(set(full)) == 2  # two different chips ...
    assert early == tsb  # ... and the TSB model's backbone is programmed exactly like the bare early backbone

    ckpt = tmp_path / "run" / "checkpoints" / "backbone_full.pt"
    drift = run_drift_study(DriftConfig(model="lenet3", width=0.5, dataset="digits", presets=["pcm"], times=["1s"],
                                        chips=2, seed=PCM["seed"], checkpoint=str(ckpt), eval_limit=60),
                            tmp_path / "drift", progress=False)
    assert drift.presets["pcm"].chip_digests == full

    refresh = run_refresh_study(config_from(RefreshConfig, PCM | {"methods": ["tsb"], "times": ["1s", "1d"],
                                                                   "refresh_times": ["1h"], "reference": False,
                                                                   "controls": False}, "test"),
                                tmp_path / "refresh", progress=False)
    assert refresh.chip_digests == tsb

    sweep = run_sweep(study_config_from_dict(PCM | {"methods": ["full_noise_injection"]}), "presets", ["pcm"],
                      tmp_path / "sweep", progress=False, plot=False)
    (point,) = sweep.points
    assert point.chips == full


def test_a_different_config_into_a_used_out_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    store = ResultStore(out, "study", {"config": {"seed": 1, "model": {"width": 0.5}}})
    store.put("tsb#0@abc", {"acc": [0.5]})
    store.close()
    before = _snapshot(out)
    with pytest.raises(ConfigError, match=r"holds results of another study configuration \(differs in: "
                                          r"config.model.width, config.seed\); pass another --out, or add "
                                          r"--move-aside"):
        ResultStore(out, "study", {"config": {"seed": 2, "model": {"width": 1.0}}})
    with pytest.raises(ConfigError, match="holds results of a study run"):
        ResultStore(out, "sweep", {"config": {"seed": 1, "model": {"width": 0.5}}})
    assert _snapshot(out) == before
    again = ResultStore(out, "study", {"config": {"seed": 1, "model": {"width": 0.5}}})  # the same config resumes
    assert again.get("tsb#0@abc") == {"acc": [0.5]}
    again.close()


def test_move_aside_renames_the_old_results_and_deletes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ResultStore(out, "study", {"seed": 1}).put("a", {"x": 1})
    (out / "results.json").write_text("{}")
    fresh = ResultStore(out, "study", {"seed": 2}, move_aside=True)
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("out.moved-")]
    assert len(moved) == 1 and (moved[0] / "results.json").exists()
    assert json.loads((moved[0] / "store.json").read_text())["cells"] == {"a": {"x": 1}}
    assert fresh.get("a") is None and json.loads((out / "store.json").read_text())["identity"] == {"seed": 2}


def test_results_of_an_earlier_version_are_not_silently_mixed(tmp_path: Path) -> None:
    (tmp_path / "cells.json").write_text('{"fingerprint": "x", "cells": {}}')
    with pytest.raises(ConfigError, match=r"holds results without a store.json \(cells.json"):
        ResultStore(tmp_path, "study", {"seed": 1})


@pytest.mark.parametrize("text, problem", [
    ('{"schema": "tsb-aihw-store/1", "cells": {', "is not valid JSON"),
    ('[1, 2, 3]', r"not a tsb-aihw result store \(missing or mis-typed schema, kind, identity, cells\)"),
    ('{"schema": "tsb-aihw-store/1", "kind": "study", "identity": {}, "cells": []}', "mis-typed cells"),
    ('{"schema": "other/9", "kind": "study", "identity": {}, "cells": {}}', "schema 'other/9'"),
])
def test_a_mis_shaped_store_is_one_clear_line(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "store.json").write_text(text)
    with pytest.raises(ConfigError, match=problem) as exc:
        ResultStore(tmp_path, "study", {})
    assert "\n" not in str(exc.value) and "--move-aside" in str(exc.value)


def test_impossible_accuracies_in_a_store_are_refused(tmp_path: Path) -> None:
    from tsb_aihw.pipeline.deploy import CellResult

    good = {"acc": [0.5], "cost": {"pulses": 1}, "block_time_s": 0.0, "verified_fraction": 0.0, "chip": "x"}
    assert CellResult.from_dict(good, "s").acc == [0.5]
    for bad in ([-3.0], [7.5], [float("nan")], "high"):
        with pytest.raises(TSBError, match="impossible|not a number|holds str"):
            CellResult.from_dict(good | {"acc": bad}, "s")
    with pytest.raises(ConfigError, match="lacks"):
        CellResult.from_dict({"acc": [0.5]}, "s")


def test_two_runs_never_share_an_out_at_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    store = ResultStore(tmp_path, "study", {"seed": 1})
    code = ("from tsb_aihw.utils.store import ResultStore\n"
            f"ResultStore({str(tmp_path)!r}, 'study', {{'seed': 1}})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "is in use by another tsb-aihw run (pid " + str(os.getpid()) in proc.stderr
    store.close()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_two_presets_with_the_same_file_stem_get_separate_results(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "device_presets" / "pcm.yaml").read_text()
    for folder, scale in (("a", "1.0"), ("b", "2.0")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "pcm.yaml").write_text(text.replace("prog_noise_scale: 1.0",
                                                                 f"prog_noise_scale: {scale}"))
    a, b = (load_preset(tmp_path / f / "pcm.yaml") for f in ("a", "b"))
    assert a.name == b.name and a.identity != b.identity and a.folder_name != b.folder_name
    assert load_preset(tmp_path / "a" / "pcm.yaml").folder_name == a.folder_name  # stable
    out = tmp_path / "drift"
    args = ["drift", "--dataset", "digits", "--width", "0.25", "--epochs", "1", "--eval-limit", "40", "--chips", "2",
            "--times", "0,1h", "--no-progress", "--out", str(out)]
    assert main([*args, "--preset", str(tmp_path / "a" / "pcm.yaml"), "--preset", str(tmp_path / "b" / "pcm.yaml")]) == 0
    res = json.loads((out / "drift.json").read_text())
    assert len(res["presets"]) == 2
    rows = list(res["presets"].values())
    assert rows[0]["folder"] != rows[1]["folder"]
    assert rows[0]["chip_digests"] != rows[1]["chip_digests"]  # different devices: different chips
    # a preset never resumes another preset's chips: the second preset alone into the same --out computes its own
    cells = json.loads((out / "store.json").read_text())["cells"]
    assert sum(k.startswith(a.folder_name) for k in cells) == 2 and sum(k.startswith(b.folder_name) for k in cells) == 2


def test_a_flag_that_does_not_apply_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--preset", "pcm", "--sigma", "0.3", "--quick", "--out", str(tmp_path / "o")]) == 2
    assert "--sigma sets noise.sigma, which preset 'pcm'" in capsys.readouterr().err
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(tiny_study()))
    assert main(["sweep", "sigma", "--config", str(cfg), "--out", str(tmp_path / "s"), "--values", "0.1",
                 "--key", "noise.sigma"]) == 2
    assert "--key applies to the param / block kinds only" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_a_schema_that_gains_a_neutral_field_keeps_every_identity(tmp_path: Path) -> None:
    """Results are keyed by a config's non-default values: a new field at its default (as
    ``block.calibration_images`` once was) keeps the store identity, the cell keys and the checkpoint keys, so
    earlier results stay resumable; setting it to anything else changes all three."""
    import dataclasses

    from tsb_aihw.pipeline.config import BlockConfig, StudyConfig
    from tsb_aihw.pipeline.methods import BASE_METHODS
    from tsb_aihw.pipeline.study import study_identity
    from tsb_aihw.pipeline.tasks import StudyContext
    from tsb_aihw.utils.schema import non_default_tree

    @dataclasses.dataclass
    class GrownBlock(BlockConfig):
        new_knob: float = 1.0

    @dataclasses.dataclass
    class GrownStudy(StudyConfig):
        block: GrownBlock = dataclasses.field(default_factory=GrownBlock)
        new_flag: bool = False

    base = study_config_from_dict(tiny_study(chips=2, block={"epochs": 1, "k": 3}))
    grown = GrownStudy(**{f.name: getattr(base, f.name) for f in dataclasses.fields(StudyConfig) if f.name != "block"},
                       block=GrownBlock(**dataclasses.asdict(base.block)))
    changed = dataclasses.replace(grown, block=dataclasses.replace(grown.block, new_knob=2.0))

    def keys(cfg: StudyConfig) -> tuple[object, ...]:
        ctx = StudyContext(cfg, tmp_path / "s", progress=False)
        return (study_identity(cfg), ctx.cell_key(BASE_METHODS["tsb"], 0, ctx.preset),
                ctx.models.keys["block_clean-1ep"], ctx.models.keys["backbone_full"])

    old, new, other = keys(base), keys(grown), keys(changed)
    assert old == new and old[:3] != other[:3] and old[1] != keys(dataclasses.replace(base, seed=4))[1]
    assert [a != b for a, b in zip(old, other)] == [True, True, True, False]  # the backbone does not use the block
    assert study_identity(base)["config"]["block"] == {"epochs": 1, "k": 3}  # only what differs from the defaults


def test_recalibrate_bn_is_keyed_by_the_method_spec_alone(tmp_path: Path) -> None:
    """block.recalibrate_bn changes only the cells that train a per-chip block, through their spec: the store
    identity, checkpoints and every other cell keep their keys, the paper's flow (false) keeps the keys it had
    before the field existed, and the default's tsb cell is keyed as the paper flow's tsb_bn (the same computation)."""
    from tsb_aihw.pipeline.methods import BASE_METHODS, method_spec
    from tsb_aihw.pipeline.study import study_identity
    from tsb_aihw.pipeline.tasks import StudyContext

    default = study_config_from_dict(tiny_study(block={"epochs": 1, "k": 3}))
    paper = study_config_from_dict(tiny_study(block={"epochs": 1, "k": 3, "recalibrate_bn": False}))
    ctx_d, ctx_p = (StudyContext(c, tmp_path / "s", progress=False) for c in (default, paper))
    assert study_identity(default) == study_identity(paper) and ctx_d.models.keys == ctx_p.models.keys
    b = BASE_METHODS["full_noise_injection"]
    assert ctx_d.cell_key(b, 0, ctx_d.preset) == ctx_p.cell_key(b, 0, ctx_p.preset)
    tsb_d, tsb_p = (ctx.cell_key(method_spec("tsb", ctx.cfg.block), 0, ctx.preset) for ctx in (ctx_d, ctx_p))
    assert tsb_p == ctx_p.cell_key(BASE_METHODS["tsb"], 0, ctx_p.preset) != tsb_d
    assert tsb_d.split("@")[1] == ctx_p.cell_key(BASE_METHODS["tsb_bn"], 0, ctx_p.preset).split("@")[1]
