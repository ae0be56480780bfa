"""Device realism (issue 17): differential RRAM mapping, NVCIM layer scale, incremental verify, ADC range
calibration and the inference cost model."""
from __future__ import annotations

import pytest
import torch
from aihwkit.nn import AnalogLinear

from tsb_aihw.devices import load_preset
from tsb_aihw.devices.noise.converters import DifferentialConductanceConverter
from tsb_aihw.errors import ConfigError

YEAR = 365.25 * 86400.0


def _programmed(preset, weights, verified=False):
    layer = AnalogLinear(weights.shape[1], weights.shape[0], bias=False, rpu_config=preset.rpu_config(verified))
    layer.set_weights(weights)
    layer.eval()
    layer.program_analog_weights()
    return layer


def test_differential_converter_cancels_a_common_shift_exactly():
    conv = DifferentialConductanceConverter(g_max=88.2, g_min=9.0)
    w = torch.randn(32, 48)
    (gp, gm), params = conv.convert_to_conductances(w)
    assert float(gp.min()) >= 9.0 - 1e-5 and float(gm.max()) <= 88.2 + 1e-5
    assert torch.allclose(conv.convert_back_to_weights([gp, gm], params), w, atol=1e-5)
    shifted = conv.convert_back_to_weights([gp - 2.8, gm - 2.8], params)     # same shift on both devices
    assert torch.allclose(shifted, w, atol=1e-5)


@pytest.mark.parametrize("mapping", ["single", "differential"])
def test_rram_relaxation_shift_is_an_offset_only_for_the_single_device_mapping(mapping):
    """Through real AIHWKit tiles and the CMO model: after a year the single device mapping has a common weight
    offset of ~-15 % of mean|w| (the -0.089 ln t uS shift); the differential pair has none."""
    torch.manual_seed(0)
    w = 0.1 * torch.randn(64, 256)
    preset = load_preset("rram", noise__conductance_mapping=mapping, drift_compensation="none")
    assert preset.write_verify.devices_per_weight == (2 if mapping == "differential" else 1)
    layer = _programmed(preset, w)
    layer.drift_analog_weights(YEAR)
    offset = float((layer.get_weights()[0] - w).mean() / w.abs().mean())
    if mapping == "single":
        assert -0.2 < offset < -0.1
    else:
        assert abs(offset) < 0.01


def test_rram_preset_ships_the_differential_pair():
    preset = load_preset("rram")
    assert preset.noise.conductance_mapping == "differential"
    assert preset.write_verify.devices_per_weight == 2
    model = preset.noise_model()
    assert isinstance(model.g_converter, DifferentialConductanceConverter)
    with pytest.raises(ConfigError, match="devices_per_weight = 1 does not match"):
        load_preset("rram", write_verify__devices_per_weight=1)


@pytest.mark.parametrize("override", [dict(mapping__max_input_size=64), dict(mapping__max_output_size=8),
                                      dict(mapping__weight_scaling_columnwise=True)])
def test_nvcim_refuses_tiling_or_columnwise_scaling(override):
    with pytest.raises(ConfigError) as info:
        load_preset("nvcim-gaussian", **override)
    text = str(info.value)
    assert "\n" not in text and "whole layer" in text and next(iter(override)).split("__")[1] in text


def test_nvcim_shipped_mapping_keeps_the_layer_max():
    """700 inputs, no split: one tile, so the noise model's abs-max is the layer's (sd 0.7776 sigma max|W|)."""
    torch.manual_seed(1)
    preset = load_preset("nvcim-gaussian", noise__sigma=0.2)
    w = torch.randn(40, 700)
    w[3, 5] = 12.0   # one large weight sets the layer max; per-row or per-tile maxima would be ~3-4
    sds = []
    for _ in range(4):
        layer = _programmed(preset, w)
        assert len(list(layer.analog_tiles())) == 1
        sds.append(float((layer.get_weights()[0] - w).std()))
    assert sum(sds) / len(sds) == pytest.approx(0.7776 * 0.2 * 12.0, rel=0.03)
