"""Preset loading, overrides, validation messages, RPU configs and the ``tsb-aihw presets`` command."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from tsb_aihw.cli.main import main as cli_main
from tsb_aihw.devices import DevicePreset, list_presets, load_preset, presets_dir
from tsb_aihw.devices.schema import valid_keys
from tsb_aihw.errors import ConfigError

SHIPPED = ["ideal", "nvcim-gaussian", "pcm", "rram"]


def test_list_and_load_all_shipped_presets():
    assert list_presets() == SHIPPED
    for name in SHIPPED:
        p = load_preset(name)
        assert isinstance(p, DevicePreset) and p.name == name
        d = p.to_dict()
        json.dumps(d)  # results files need plain data
        assert d["derived"]["training_noise_std"] == p.training_noise_std


def test_derived_properties():
    pcm, rram, nv, ideal = (load_preset(n) for n in ("pcm", "rram", "nvcim-gaussian", "ideal"))
    assert pcm.drifts and rram.drifts and not nv.drifts and not ideal.drifts
    assert not load_preset("pcm", noise__drift_scale=0.0, noise__read_noise_scale=0.0).drifts
    assert nv.training_noise_std == pytest.approx(0.7776 * 0.35, abs=1e-4)
    assert load_preset("nvcim-gaussian", noise__sigma=0.1).training_noise_std == pytest.approx(0.07776, abs=1e-5)
    assert ideal.training_noise_std == 0.0
    assert pcm.training_noise_std == 0.045 and rram.training_noise_std == 0.015


def test_overrides_keyword_and_dotted_dict():
    a = load_preset("nvcim-gaussian", noise__sigma=0.3, periphery__adc_bits=6)
    b = load_preset("nvcim-gaussian", overrides={"noise.sigma": 0.3, "periphery.adc_bits": 6})
    assert a.noise.sigma == b.noise.sigma == 0.3 and a.periphery.adc_bits == b.periphery.adc_bits == 6
    assert dataclasses.asdict(a) == dataclasses.asdict(b) | {"source": a.source}
    # switching the device model starts its noise section from that model's defaults
    with pytest.raises(ConfigError, match="derived"):
        load_preset("pcm", noise__model="ideal")  # pcm's stored training noise conflicts with ideal's
    c = load_preset("pcm", noise__model="ideal", training__noise_std=None)
    assert c.noise.model == "ideal" and c.training_noise_std == 0.0 and "noise.model" in c.source


def test_yaml_path_works_and_errors_name_the_file(tmp_path: Path):
    raw = yaml.safe_load((presets_dir() / "nvcim-gaussian.yaml").read_text())
    raw["noise"]["sigma"] = 0.2
    good = tmp_path / "mine.yaml"
    good.write_text(yaml.safe_dump(raw))
    assert load_preset(str(good)).noise.sigma == 0.2
    raw["noise"]["sigma"] = -0.1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as exc:
        load_preset(bad)
    msg = str(exc.value)
    assert str(bad) in msg and "noise.sigma" in msg and "-0.1" in msg and "0 <= sigma <= 2" in msg


@pytest.mark.parametrize("overrides, needles", [
    ({"noise__sigma": -0.1}, ["noise.sigma", "-0.1", "0 <= sigma <= 2"]),
    ({"periphery__adc_bits": 0}, ["periphery.adc_bits", "0", "2 <= adc_bits <= 24"]),
    ({"periphery__adc_bits": 1}, ["periphery.adc_bits", "2 <= adc_bits"]),  # 1 bit: step 1/(2**1-2) = 1/0
    ({"periphery__adc_bits": "8"}, ["periphery.adc_bits", "'8'", "wrong type", "integer"]),
    ({"write_verify__tolerance": 0.0}, ["write_verify.tolerance", "0 < tolerance <= 1"]),
    ({"write_verify__tolerance": -1}, ["write_verify.tolerance", "-1"]),
    ({"write_verify__max_iterations": 0}, ["write_verify.max_iterations", "1 <= max_iterations"]),
    ({"tile__backend": "cuda"}, ["tile.backend", "'cuda'", "'torch', 'cpp'"]),
    ({"periphery__is_perfect": "yes"}, ["periphery.is_perfect", "true or false"]),
    ({"noise__sigma": "0.3"}, ["noise.sigma", "'0.3'", "wrong type", "number"]),
    ({"noise__sigm": 0.3}, ["unknown key", "noise.sigm", "did you mean 'noise.sigma'"]),
    ({"periphery__adc_bit": 6}, ["did you mean 'periphery.adc_bits'"]),
    ({"noise__model": "pcmm"}, ["noise.model", "did you mean 'pcm'"]),
    ({"training__noise_std": 0.1}, ["training.noise_std", "derived", "remove"]),
    ({"write_verify__devices_per_weight": 2}, ["devices_per_weight", "set it to 4"]),
    ({"noise__weight_bits": 7}, ["weight_bits", "multiple"]),
])
def test_validation_errors_name_key_value_and_range(overrides, needles):
    with pytest.raises(ConfigError) as exc:
        load_preset("nvcim-gaussian", **overrides)
    msg = str(exc.value)
    assert "nvcim-gaussian.yaml" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_yaml_exponent_without_dot_is_a_number():
    """PyYAML (YAML 1.1) reads 1e-9 as a string; the schema accepts that spelling for numbers."""
    p = load_preset("pcm", write_verify__t_read="1e-9")
    assert p.write_verify.t_read == 1e-9


def test_model_specific_keys_and_required_keys(tmp_path: Path):
    with pytest.raises(ConfigError, match="unknown key 'noise.sigma'"):
        load_preset("pcm", noise__sigma=0.3)   # sigma belongs to nvcim-gaussian
    with pytest.raises(ConfigError, match="did you mean"):
        load_preset("pcm", overrides={"noise.g_maxx": 30})
    raw = yaml.safe_load((presets_dir() / "pcm.yaml").read_text())
    del raw["write_verify"]["t_pulse"]
    del raw["training"]["noise_std"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"missing key 'training.noise_std'|missing key 'write_verify.t_pulse'"):
        load_preset(path)


def test_unknown_preset_lists_names_and_mentions_paths():
    with pytest.raises(ConfigError) as exc:
        load_preset("pcmm")
    msg = str(exc.value)
    assert all(n in msg for n in SHIPPED) and "path" in msg
    with pytest.raises(ConfigError, match="device preset file /nonexistent/x.yaml not found"):
        load_preset("/nonexistent/x.yaml")


def test_every_valid_key_is_in_some_shipped_yaml_or_has_default():
    keys = valid_keys()
    assert "write_verify.verify_read_noise" in keys and "noise.acceptance_range" in keys
    for name in SHIPPED:
        raw = yaml.safe_load((presets_dir() / f"{name}.yaml").read_text())
        for section in ("noise", "periphery", "mapping", "tile", "write_verify"):
            assert section in raw, (name, section)


def test_rpu_config_backends_and_settings():
    from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

    pcm = load_preset("pcm")
    cfg = pcm.rpu_config(False)
    assert type(cfg) is TorchInferenceRPUConfig
    assert type(load_preset("pcm", tile__backend="cpp").rpu_config(False)) is InferenceRPUConfig
    io = cfg.forward
    assert io.inp_res == pytest.approx(1 / 254) and io.out_res == pytest.approx(1 / 254)
    assert io.out_noise == 0.04 and not io.is_perfect
    assert io.noise_management == NoiseManagementType.ABS_MAX and io.bound_management == BoundManagementType.NONE
    assert cfg.mapping.weight_scaling_omega == 1.0 and cfg.mapping.weight_scaling_columnwise
    assert type(cfg.drift_compensation).__name__ == "RandomReadoutGlobalDriftCompensation"
    assert type(load_preset("pcm", drift_compensation="global").rpu_config(False).drift_compensation).__name__ \
        == "GlobalDriftCompensation"
    nv = load_preset("nvcim-gaussian").rpu_config(True)
    assert nv.forward.is_perfect and nv.mapping.max_input_size == 0 == nv.mapping.max_output_size
    assert not nv.mapping.weight_scaling_columnwise and nv.drift_compensation is None
    assert load_preset("nvcim-gaussian", periphery__adc_bits=6).rpu_config(True).forward.out_res == \
        pytest.approx(1 / 62)


@pytest.mark.parametrize("name", SHIPPED)
def test_verified_and_one_shot_configs_differ_only_in_default_verified(name):
    p = load_preset(name)
    a, b = p.rpu_config(False), p.rpu_config(True)
    assert a is not b and a.noise_model is not b.noise_model        # fresh objects every call
    for f in dataclasses.fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if f.name == "noise_model":
            assert (va.default_verified, vb.default_verified) == (False, True)
            assert va.spec == vb.spec and str(va.inner) == str(vb.inner)
            assert va.min_drift_time == vb.min_drift_time and va.verify_mask is None is vb.verify_mask
        elif f.name == "drift_compensation":
            assert type(va) is type(vb)
        else:
            assert va == vb, f.name
    assert p.rpu_config(False).noise_model.inner is not a.noise_model.inner


def test_cli_table(capsys):
    assert cli_main(["presets"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for col in ("name", "device model", "backend", "DAC/ADC bits", "drift", "verify tol", "key noise numbers"):
        assert col in header
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:6]}
    assert set(lines) == set(SHIPPED)
    assert "8/8" in lines["pcm"] and " yes " in lines["pcm"] and "0.01" in lines["pcm"]
    assert "exact" in lines["nvcim-gaussian"] and " no " in lines["nvcim-gaussian"]
    assert "0.2722 max|W|" in lines["nvcim-gaussian"] and "reram-cmo" in lines["rram"]


def test_cli_json(capsys):
    assert cli_main(["presets", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == SHIPPED
    by = {d["name"]: d for d in data}
    assert by["pcm"]["periphery"]["adc_bits"] == 8 and by["pcm"]["derived"]["drifts"] is True
    assert by["nvcim-gaussian"]["derived"]["weight_std_over_absmax"] == pytest.approx(0.2722, abs=1e-4)


def test_missing_preset_dir_is_a_clear_error(monkeypatch, tmp_path):
    import tsb_aihw.devices.presets as presets_module

    # the preset folder sits beside the package: tsb_aihw/devices/presets.py -> ../../device_presets
    monkeypatch.setattr(presets_module, "__file__", str(tmp_path / "tsb_aihw" / "devices" / "presets.py"))
    with pytest.raises(ConfigError, match="device_presets"):
        list_presets()
    assert cli_main(["presets"]) == 2
