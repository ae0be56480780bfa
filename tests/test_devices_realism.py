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


# ------------------------------------------------------------------------------------------ incremental verify
def test_incremental_loop_noise_free_steps_are_exact():
    """gain 1, no step or read noise: one corrective pulse lands on the target; gain 0.5 halves the error per
    pulse, so a device needs exactly 1 + ceil(log2(|e0| / tol)) pulses."""
    from tsb_aihw.devices.noise import incremental_verify_loop

    torch.manual_seed(0)
    target = torch.rand(4000) * 20
    first = target + torch.randn(4000)
    mask = torch.ones(4000, dtype=torch.bool)
    prog, pulses, reads, failed = incremental_verify_loop(target, first, mask, 0.1, 0.0, 20, 1.0, 0.0, 0.0)
    out = (first - target).abs() > 0.1
    assert torch.allclose(prog, target, atol=1e-5) or bool(((prog - target).abs() <= 0.1).all())
    assert bool((pulses[out] == 2).all()) and bool((pulses[~out] == 1).all()) and not bool(failed.any())
    assert torch.equal(reads, pulses)
    prog, pulses, _, failed = incremental_verify_loop(target, first, mask, 0.1, 0.0, 40, 0.5, 0.0, 0.0)
    e0 = (first - target).abs()
    expected = torch.where(e0 > 0.1, 1 + torch.ceil(torch.log2(e0 / 0.1)), torch.ones_like(e0))
    assert bool(((prog - target).abs() <= 0.1 + 1e-6).all()) and not bool(failed.any())
    assert (pulses.float() - expected).abs().max() <= 1   # float rounding at exact powers of two


def test_incremental_verify_pulse_statistics_match_docs():
    """docs/devices.md section 3 (pcm, 64x256 Gaussian, 2 chips): incremental 1.63 pulses/device, sd 0.89,
    no failures; redraw 2.18, sd 2.2, failures clustered at high conductance. Tolerance is on the noisy read:
    ~88-92 % truly within it, > 99.5 % within it + 2 read sd."""
    from tsb_aihw.devices.characterize import verify_statistics

    inc = verify_statistics(load_preset("pcm", write_verify__algorithm="incremental"), n_chips=2)
    red = verify_statistics(load_preset("pcm", write_verify__algorithm="redraw"), n_chips=2)
    assert inc.failed_fraction == 0.0 and 1.5 < inc.pulses_mean < 1.8 and inc.pulses_sd < 1.1
    assert 2.0 < red.pulses_mean < 2.4 and red.pulses_sd > 2 * inc.pulses_sd
    low, high = red.bins[0], red.bins[2]
    assert high.failed_fraction > 0.003 > low.failed_fraction
    for st in (inc, red):
        assert 0.85 < st.within_tol < 0.95 and st.within_tol_plus_2_read_sd > 0.995
    assert set(red.to_dict()) >= {"pulses_mean", "bins"} and red.to_dict()["bins"][0]["devices"] == low.devices


def test_incremental_is_the_shipped_conductance_loop_and_redraw_an_option():
    assert load_preset("pcm").write_verify.algorithm == "incremental"
    assert load_preset("rram").write_verify.algorithm == "incremental"
    assert load_preset("nvcim-gaussian").write_verify.algorithm == "redraw"
    torch.manual_seed(0)
    w = torch.randn(32, 64)
    layer = _programmed(load_preset("pcm", write_verify__algorithm="incremental", noise__read_noise_scale=0.0,
                                    periphery__is_perfect=True), w, verified=True)
    from tsb_aihw.devices import tile_programming_stats

    st = tile_programming_stats(next(layer.analog_tiles()))
    assert st["failed_cells"] == 0 and st["pulses"] == st["reads"] and st["pulses"] > 2 * w.numel()


# ------------------------------------------------------------------------------------------ ADC calibration
def _calib_net():
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).eval()


def test_calibrated_bounds_cover_the_outputs_they_were_set_from():
    from tsb_aihw.analog import calibrate_adc, to_analog
    from tsb_aihw.analog.tiles import tile_grid

    preset = load_preset("pcm", mapping__max_input_size=16, mapping__max_output_size=4)
    analog = to_analog(_calib_net(), preset, verify="none")
    analog.program_analog_weights()
    x = torch.randn(40, 3, 6, 6)
    cal = calibrate_adc(analog, [(x[:25], None), (x[25:], None)], percentile=99.0)
    assert cal.images == 40 and len(cal.tiles) == sum(len(tile_grid(m)) for _, m in analog.named_analog_layers())
    for t in cal.tiles:
        assert t.covered >= 0.99 - 1e-3 and t.previous == 10.0 and 0 < t.out_bound < 10.0
    for name, layer in analog.named_analog_layers():
        for piece, bound in zip(tile_grid(layer), cal.bounds()[name]):
            assert piece.tile.rpu_config.forward.out_bound == bound == piece.tile.tile._f_io.out_bound
    from tsb_aihw.analog import fast_forward

    with torch.no_grad():   # AIHWKit's forward and the fast path agree with the per-tile bounds
        torch.manual_seed(5)
        slow = analog(x)
        with fast_forward(analog):
            torch.manual_seed(5)
            fast = analog(x)
    assert torch.allclose(slow, fast, atol=1e-4, rtol=1e-4)
    per_layer = calibrate_adc(analog, [(x, None)], percentile=99.0, mode="per_layer")
    for name, bounds in per_layer.bounds().items():
        assert len(set(bounds)) == 1


def test_calibration_outputs_are_aihwkits_pre_adc_outputs():
    """Independent check of the recomputed pre-ADC output: AIHWKit's own forward with (practically) no ADC and
    no output noise, divided by its NM factor, has the same percentile as the calibrated bound."""
    from tsb_aihw.analog import calibrate_adc, to_analog

    torch.manual_seed(0)
    preset = load_preset("pcm", periphery__adc_bits=24, periphery__out_bound=100.0, periphery__out_noise=0.0,
                         drift_compensation="none")
    net = torch.nn.Sequential(torch.nn.Linear(30, 12, bias=False)).eval()
    analog = to_analog(net, preset, verify="none")
    analog.program_analog_weights()
    x = torch.randn(500, 30)
    layer = analog[0]
    tile = next(layer.analog_tiles())
    with torch.no_grad():
        y = layer(x) / x.abs().amax(1, keepdim=True) / tile.get_mapping_scales().view(1, -1)
    cal = calibrate_adc(analog, [(x, None)], percentile=95.0)
    assert cal.tiles[0].out_bound == pytest.approx(float(torch.quantile(y.abs().flatten(), 0.95)), rel=0.01)


def test_calibrate_adc_bad_input_is_one_clear_line():
    from tsb_aihw.analog import calibrate_adc, to_analog

    analog = to_analog(_calib_net(), load_preset("pcm"), verify="none")
    for kwargs, needle in ((dict(percentile=20.0), "percentile"), (dict(mode="global"), "mode")):
        with pytest.raises(ConfigError, match=needle) as info:
            calibrate_adc(analog, [(torch.randn(2, 3, 6, 6), None)], **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no images"):
        calibrate_adc(analog, [])


# ------------------------------------------------------------------------------------------ inference cost
def test_inference_cost_of_one_linear_layer_by_hand():
    from torch import nn

    from tsb_aihw.analog import CostConstants, inference_cost, to_analog

    preset = load_preset("pcm")
    analog = to_analog(nn.Sequential(nn.Linear(256, 64)).eval(), preset, verify="none")
    cost = inference_cost(analog, preset, (256,), pricing="constants")
    c, wv = CostConstants(), preset.write_verify
    (row,) = cost.layers
    assert (row.calls, row.vectors, row.tiles, row.tile_mvms) == (1, 1, 1, 1)
    assert (row.dac_conversions, row.adc_conversions, row.cell_reads) == (256, 64, 256 * 64 * 2)
    assert (row.dac_bits, row.adc_bits) == (8, 8)
    energy = 256 * 1e-15 * 256 + 64 * 10e-15 * 256 + 256 * 64 * 2 * 0.25e-12   # 0.066 + 0.164 + 8.19 nJ
    assert cost.energy_j == pytest.approx(energy, rel=1e-9) and c.adc_fom_j == 10e-15 and wv.e_read == 0.25e-12
    assert cost.latency_s == pytest.approx(1e-9 + 250e-9 + 8 * 1e-9)
    assert cost.programming is None                         # not programmed yet
    analog.program_analog_weights()
    assert inference_cost(analog, preset, (256,), pricing="constants").programming.cells == 256 * 64
    six = inference_cost(to_analog(nn.Sequential(nn.Linear(256, 64)).eval(),
                                   load_preset("pcm", periphery__adc_bits=6), verify="none"),
                         load_preset("pcm", periphery__adc_bits=6), (256,), pricing="constants")
    assert six.layers[0].energy_adc_j == pytest.approx(64 * 10e-15 * 64)


def test_inference_cost_counts_the_shared_block_at_every_site():
    """LeNet-3 + TSB (k=16): sites after bn1 (32 ch, 28x28 -> 2 groups) and bn2 (64 ch, 10x10 -> 4 groups):
    the one shared tile runs 2*784 + 4*100 = 1968 vectors per image; conv1 784, conv2 100, fc 1."""
    from tsb_aihw.analog import inference_cost, to_analog
    from tsb_aihw.models import get_model, insert_tsb

    preset = load_preset("pcm")
    torch.manual_seed(0)
    model = insert_tsb(get_model("lenet3", num_classes=10), input_shape=(1, 32, 32))
    cost = inference_cost(to_analog(model, preset), preset, (1, 32, 32))
    rows = {r.name: r for r in cost.layers}
    assert rows["tsb.conv"].calls == 2 and rows["tsb.conv"].vectors == 1968
    assert rows["tsb.conv"].adc_conversions == 1968 * 16 and rows["tsb.conv"].cell_reads == 1968 * 16 * 16 * 2
    assert (rows["conv1"].vectors, rows["conv2"].vectors, rows["fc"].vectors) == (784, 100, 1)
    assert rows["conv2"].tiles == 2 and rows["conv2"].tile_mvms == 200        # [64, 800] -> 2 input splits
    base = inference_cost(to_analog(get_model("lenet3", num_classes=10), preset, verify="none"), preset, (1, 32, 32))
    assert cost.mvms == base.mvms + 1968 and cost.energy_j > base.energy_j
    with pytest.raises(ConfigError, match="input_shape"):
        inference_cost(to_analog(model, preset), preset, (1, 32))


def test_calibration_re_reads_the_drift_compensation_baseline():
    """No drift, no read or output noise, 4-bit ADC: after calibrating, a drift call must give alpha = 1. A
    baseline left from the old bound (10) would give a different alpha (the one-hot read-out quantises
    differently at another bound)."""
    from tsb_aihw.analog import calibrate_adc, to_analog

    torch.manual_seed(0)
    preset = load_preset("pcm", periphery__adc_bits=4, periphery__out_noise=0.0, noise__drift_scale=0.0,
                         noise__read_noise_scale=0.0)
    analog = to_analog(_calib_net(), preset, verify="none")
    analog.program_analog_weights()
    calibrate_adc(analog, [(torch.randn(64, 3, 6, 6), None)], percentile=99.0)
    analog.drift_analog_weights(86400.0)
    for tile in analog.analog_tiles():
        assert float(tile.alpha.reshape(-1)[0]) == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------------------------------ drift compensation
@pytest.mark.parametrize("bits", [4, 8])
def test_random_readout_compensation_finds_the_drift_factor_at_low_adc_bits(bits):
    """PCM after a day, no read/output noise: the true global factor is the LS scale from drifted to programmed
    weights. The sparse +-1 read-out finds it within 1 % at 8 bits and 5 % at 4 bits; AIHWKit's one-hot
    read-out (outputs of a few ADC steps, mostly rounded to 0) is off by > 10 % at 4 bits."""
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    alphas = {}
    for comp in ("global", "global_random"):
        preset = load_preset("pcm", periphery__adc_bits=bits, periphery__out_noise=0.0, noise__read_noise_scale=0.0,
                             drift_compensation=comp)
        torch.manual_seed(1)
        layer = _programmed(preset, w)
        tile = next(layer.analog_tiles())
        prog = tile.programmed_weights.clone()
        layer.drift_analog_weights(86400.0)
        drifted = tile.tile.get_weights()
        true = float((prog * prog).sum() / (prog * drifted).sum())
        alphas[comp] = float(tile.alpha.reshape(-1)[0]) / true
    assert alphas["global_random"] == pytest.approx(1.0, abs=0.01 if bits == 8 else 0.05)
    if bits == 4:
        assert abs(alphas["global"] - 1.0) > 0.1
