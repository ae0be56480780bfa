"""``tsb-aihw sweep`` takes its config as every command does: the flags a user gave, as dotted overrides on the sweep
config (``--values`` is ``sweep.<kind>.values``); each key of a ``sweep:`` entry has one owner. No training here."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from tsb_aihw.cli.main import build_parser, main
from tsb_aihw.cli.sweep import overrides_from
from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import StudyConfig
from tsb_aihw.sweeps.axes import SweepAxis
from tsb_aihw.sweeps.options import AXIS_KEYS, RUN_KEYS, SweepOptions, load_sweep_config, sweep_from_config

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "configs/sweeps/mnist5k-lenet3.yaml"


def _config(tmp_path: Path, sweep: object, **top: object) -> Path:
    raw = yaml.safe_load(BASE.read_text()) | top
    raw["sweep"] = sweep
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _load(path: Path, *flags: str) -> tuple[StudyConfig, SweepAxis]:
    args = build_parser().parse_args(["sweep", *flags[:1], "--config", str(path), "--out", "unused", *flags[1:]])
    kind = args.kind.replace("-", "_")
    return sweep_from_config(args.config, kind, overrides_from(args, kind))


def test_a_flag_beats_the_entry_which_beats_the_study(tmp_path: Path) -> None:
    path = _config(tmp_path, {"verified-fraction": {"values": [0, 1], "chips": 3, "points": ["tsb"],
                                                    "add_tsb_fraction": False}}, chips=4)
    cfg, axis = _load(path, "verified-fraction")
    assert cfg.chips == 3 and axis.values == [0.0, 1.0] and axis.points == ["tsb"] and not axis.add_tsb_fraction
    cfg, axis = _load(path, "verified-fraction", "--chips", "5", "--values", "0,0.5,1", "--methods", "tsb",
                      "--seed", "7")
    assert (cfg.chips, cfg.methods, cfg.seed, axis.values) == (5, ["tsb"], 7, [0.0, 0.5, 1.0])
    cfg, axis = _load(path, "sigma", "--values", "0.1")  # no entry for sigma: the study's own keys
    assert cfg.chips == 4 and axis.values == [0.1] and axis.io == ["adc", "dac"]  # SweepAxis's own default
    assert load_sweep_config(path, {"chips": 6})[0].chips == 6  # `tsb-aihw run` deploys the base study


def test_an_entrys_keys_are_owned_by_the_axis_and_the_study() -> None:
    """SweepOptions declares nothing itself: every field is SweepAxis's (but kind) or one of StudyConfig's run keys,
    with its owner's checks."""
    own = {f.name: f for f in dataclasses.fields(SweepOptions)}
    assert set(own) == set(AXIS_KEYS + RUN_KEYS) and len(own) == len(AXIS_KEYS + RUN_KEYS)
    assert set(AXIS_KEYS) == {f.name for f in dataclasses.fields(SweepAxis)} - {"kind"}
    study = {f.name: f for f in dataclasses.fields(StudyConfig)}
    hints = typing.get_type_hints(StudyConfig)
    for name in RUN_KEYS:
        assert dict(own[name].metadata) == dict(study[name].metadata)
        assert typing.get_type_hints(SweepOptions)[name] == typing.Optional[hints[name]]
    assert all(getattr(SweepOptions(), name) is None for name in own)


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/sweeps/*.yaml")) + sorted(ROOT.glob("configs/*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_entry_loads(path: Path, monkeypatch) -> None:
    from tsb_aihw.utils import device

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(device, "resolve_device", lambda d: d)  # the -gpu twins name cuda; no GPU here
    _, entries = load_sweep_config(path)
    for kind in entries:
        cfg, axis = sweep_from_config(path, kind)
        assert axis.kind == kind and axis.values and cfg.chips >= 2


@pytest.mark.parametrize("sweep, flags, message", [
    ({}, ["sigma", "--chips", "1"], "sweep.sigma.chips = 1 is out of range; allowed: 2 <= chips <= 100000"),
    ({}, ["sigma", "--values", "0.1", "--methods", "tsbb"], "unknown method (did you mean 'tsb'?)"),
    ({}, ["adc-bits"], "sweep adc-bits: no values; pass --values (or --presets), or put them under sweep: adc-bits"),
    ({"sigma": {"valeus": [1]}}, ["sigma"], "did you mean 'sweep.sigma.values'"),
    ({"sigma": [0.1]}, ["sigma", "--values", "0.2"], "sweep.sigma must be a mapping of options"),
    ({"adc-bits": {"values": [4]}, "adc_bits": {"values": [6]}}, ["adc-bits"], "two entries for the adc_bits kind"),
    ({"sigmaa": {"values": [0.1]}}, ["sigma"], "unknown sweep kind 'sigmaa'"),
    ({"sigma": {"values": [0.1], "chips": "many"}}, ["sigma"], "sweep.sigma.chips = 'many' has the wrong type"),
])
def test_a_bad_flag_or_entry_is_one_config_error_line(tmp_path: Path, capsys, sweep, flags, message) -> None:
    path = _config(tmp_path, sweep)
    with pytest.raises(ConfigError) as exc:
        _load(path, *flags)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    out = tmp_path / "o"
    assert main(["sweep", flags[0], "--config", str(path), "--out", str(out), *flags[1:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and not out.exists()
