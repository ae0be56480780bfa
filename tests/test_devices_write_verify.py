"""The write-verify loop as a process: tolerance, failures, masks, pulse/read counts, per-tile state, cost."""
from __future__ import annotations

import pytest
import torch
from aihwkit.nn import AnalogLinear, AnalogSequential
from aihwkit.nn.conversion import convert_to_analog
from torch import nn

from tsb_aihw.devices import (
    WriteVerifyNoiseModel,
    get_verify_mask,
    load_preset,
    programming_cost,
    set_verify_mask,
    tile_programming_stats,
)
from tsb_aihw.devices.noise import verify_loop
from tsb_aihw.errors import TSBError


def _layer(preset, in_f, out_f, weights, verified):
    layer = AnalogLinear(in_f, out_f, bias=False, rpu_config=preset.rpu_config(verified))
    layer.set_weights(weights)
    return layer.eval()


def _tile(layer):
    return next(layer.analog_tiles())


def test_verify_loop_device_level_invariants():
    """Exact reads: accepted devices are within tolerance; failed ones had max pulses; reads == pulses."""
    torch.manual_seed(0)
    target = torch.rand(200, 50) * 25
    redraw = lambda sel: target[sel] + 2.0 * torch.randn_like(target[sel])  # noqa: E731
    mask = torch.rand(200, 50) < 0.6
    first = target + 2.0 * torch.randn_like(target)
    prog, pulses, reads, failed = verify_loop(target, first, redraw, mask, tol=0.5, read_std=0.0, max_iterations=6)
    err = (prog - target).abs()
    assert bool((err[mask & ~failed] <= 0.5).all())
    assert bool((err[failed] > 0.5).all()) and int(failed.sum()) > 0      # P(fail) = 0.8^6 ~ 26 %
    assert bool((pulses[failed] == 6).all()) and int(pulses.max()) == 6
    assert torch.equal(reads[mask], pulses[mask])                          # every pulse is verified
    assert bool((pulses[~mask] == 1).all()) and bool((reads[~mask] == 0).all())
    assert torch.equal(prog[~mask], first[~mask])                          # unverified: untouched
    assert not bool(failed[~mask].any())
    # success probability per draw P(|N(0,2)| < 0.5) = 0.197: mean pulses of accepted ~ geometric
    frac = float(failed[mask].float().mean())
    assert frac == pytest.approx((1 - 0.1974) ** 6, abs=0.03)


def test_nvcim_verified_cells_within_tolerance_failed_counted():
    torch.manual_seed(0)
    preset = load_preset("nvcim-gaussian", write_verify__max_iterations=4)
    w = torch.randn(48, 96)
    layer = _layer(preset, 96, 48, w, verified=True)
    layer.program_analog_weights()
    tile = _tile(layer)
    st = tile_programming_stats(tile)
    err = (layer.get_weights()[0] - w).abs() / w.abs().max()
    out_of_tol = err > preset.write_verify.tolerance + 1e-6
    assert st["failed_cells"] == int(out_of_tol.sum()) > 0            # exactly the cells that hit the limit
    pulses = tile.rpu_config.noise_model.cell_pulses
    assert bool((pulses[out_of_tol] == 4 * 4).all())                 # 4 tries x 4 devices
    assert st["pulses"] == int(pulses.sum()) == st["reads"]         # all verified: each pulse read once
    assert st["devices"] == 4 * st["cells"] and st["verified_cells"] == st["cells"]


def test_nvcim_verified_error_distribution_comes_out_of_the_loop():
    """Accepted errors are ~uniform within +-tol: sd = tol/sqrt(3) (not an assumed residual sigma)."""
    torch.manual_seed(1)
    preset = load_preset("nvcim-gaussian")
    w = torch.randn(64, 128)
    layer = _layer(preset, 128, 64, w, verified=True)
    layer.program_analog_weights()
    err = (layer.get_weights()[0] - w) / w.abs().max()
    st = tile_programming_stats(_tile(layer))
    ok = err.abs() <= 0.05 + 1e-6
    assert int((~ok).sum()) == st["failed_cells"]
    assert float(err[ok].std()) == pytest.approx(0.05 / 3**0.5, rel=0.04)
    # pulses per verified weight: 1 / P(|N(0, 0.272)| < 0.05) = 6.8 (x 4 devices)
    assert st["pulses"] / st["cells"] / 4 == pytest.approx(1 / 0.1458, rel=0.05)


def test_mask_verifies_exactly_the_masked_cells():
    torch.manual_seed(2)
    preset = load_preset("nvcim-gaussian")
    w = torch.randn(32, 64)
    layer = _layer(preset, 64, 32, w, verified=False)
    tile = _tile(layer)
    assert get_verify_mask(tile) is None
    mask = torch.rand(32, 64) < 0.3
    set_verify_mask(tile, mask)
    assert torch.equal(get_verify_mask(tile), mask)
    layer.program_analog_weights()
    st = tile_programming_stats(tile)
    pulses = tile.rpu_config.noise_model.cell_pulses
    err = (layer.get_weights()[0] - w) / w.abs().max()
    assert st["verified_cells"] == int(mask.sum())
    assert bool((pulses[~mask] == 4).all())                                   # one-shot: one pulse per device
    assert float(err[~mask].std()) == pytest.approx(0.2722, rel=0.05)         # one-shot error kept
    assert int((err[mask].abs() > 0.05 + 1e-6).sum()) == st["failed_cells"]  # only failures exceed tol
    assert float(err[mask].std()) < 0.035                                      # ~ 0.05/sqrt(3) = 0.029
    assert st["pulses"] == 4 * int((~mask).sum()) + int(pulses[mask].sum())
    assert st["reads"] == int(pulses[mask].sum())
    # None restores the config default (none for verified=False)
    set_verify_mask(tile, None)
    layer.program_analog_weights()
    assert tile_programming_stats(tile)["verified_cells"] == 0


def test_mask_on_conductance_model_pcm():
    torch.manual_seed(3)
    preset = load_preset("pcm", noise__read_noise_scale=0.0, noise__drift_scale=0.0, periphery__is_perfect=True,
                         write_verify__verify_read_noise=0.0)
    w = torch.randn(32, 64)
    layer = _layer(preset, 64, 32, w, verified=True)
    tile = _tile(layer)
    mask = torch.zeros(32, 64, dtype=torch.bool)
    mask[:16] = True
    set_verify_mask(tile, mask)
    layer.program_analog_weights()
    st = tile_programming_stats(tile)
    pulses = tile.rpu_config.noise_model.cell_pulses
    assert bool((pulses[~mask] == 2).all()) and st["verified_cells"] == 16 * 64
    # each of the two devices within 1 % of g_max -> weight within 2 % of the row max (column-wise omega)
    row_max = w.abs().amax(dim=1, keepdim=True)
    err = ((layer.get_weights()[0] - w) / row_max).abs()
    ok = err[mask] <= 0.02 + 1e-5
    assert int((~ok).sum()) <= st["failed_cells"]
    assert float(err[:16].std()) < 0.5 * float(err[16:].std())
    assert st["reads"] == int(pulses[mask].sum()) and st["pulses"] == int(pulses.sum())


def test_wrapper_one_shot_is_bit_identical_to_aihwkit_model():
    """Unverified cells are programmed exactly as AIHWKit's own model does (same draws, same order)."""
    for name in ("pcm", "rram"):
        preset = load_preset(name)
        wrapper = preset.rpu_config(False).noise_model
        w = torch.randn(16, 24)
        torch.manual_seed(5)
        ours, nu_ours = wrapper.apply_programming_noise(w)
        torch.manual_seed(5)
        theirs, nu_theirs = preset.noise_model().apply_programming_noise(w)
        assert torch.equal(ours, theirs), name
        assert len(nu_ours) == len(nu_theirs) and all(torch.equal(a, b) for a, b in zip(nu_ours, nu_theirs))


def test_verified_cells_still_drift():
    torch.manual_seed(4)
    preset = load_preset("pcm", noise__read_noise_scale=0.0, periphery__is_perfect=True)
    w = torch.randn(16, 32)
    layer = _layer(preset, 32, 16, w, verified=True)
    layer.program_analog_weights()
    programmed = layer.get_weights()[0].clone()
    layer.drift_analog_weights(86400.0)
    ratio = (layer.get_weights()[0].abs().sum() / programmed.abs().sum()).item()
    assert ratio < 0.7  # nu ~ 0.05-0.1 over (86400/20): verify does not stop drift


def test_each_tile_owns_its_noise_model_in_arrays_and_conversion():
    preset = load_preset("pcm", mapping__max_input_size=32, mapping__max_output_size=16)
    cfg = preset.rpu_config(False)
    layer = AnalogLinear(70, 40, bias=False, rpu_config=cfg).eval()      # 3 x 3 tile array
    tiles = list(layer.analog_tiles())
    assert len(tiles) == 9
    models = [t.rpu_config.noise_model for t in tiles]
    assert len({id(m) for m in models}) == 9 and all(m is not cfg.noise_model for m in models)
    set_verify_mask(tiles[0], torch.ones(tiles[0].out_size, tiles[0].in_size, dtype=torch.bool))
    layer.set_weights(torch.randn(40, 70))
    layer.program_analog_weights()
    stats = [tile_programming_stats(t) for t in tiles]
    assert stats[0]["verified_cells"] == stats[0]["cells"] and all(s["verified_cells"] == 0 for s in stats[1:])
    assert sum(s["cells"] for s in stats) == 70 * 40

    # convert_to_analog with a per-layer config function: fresh deep copies per layer
    net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 4))
    verified = preset.rpu_config(True)
    analog = convert_to_analog(net, preset.rpu_config(False),
                               specific_rpu_config_fun=lambda n, m, r: verified if n == "2" else r).eval()
    analog.program_analog_weights()
    t0, t2 = next(analog[0].analog_tiles()), next(analog[2].analog_tiles())
    assert t0.rpu_config.noise_model is not t2.rpu_config.noise_model
    assert tile_programming_stats(t0)["verified_cells"] == 0
    assert tile_programming_stats(t2)["verified_cells"] == 6 * 4


def test_programming_cost_sums_tiles_and_prices_them():
    torch.manual_seed(6)
    preset = load_preset("nvcim-gaussian")
    model = AnalogSequential(AnalogLinear(10, 8, bias=False, rpu_config=preset.rpu_config(False)),
                             AnalogLinear(8, 4, bias=False, rpu_config=preset.rpu_config(True))).eval()
    with pytest.raises(TSBError, match="not been programmed"):
        programming_cost(model, preset)
    model.program_analog_weights()
    cost = programming_cost(model, preset)
    wv = preset.write_verify
    assert cost.tiles == 2 and cost.cells == 112 and cost.devices == 448 and cost.verified_cells == 32
    one_shot_pulses = 80 * 4
    assert cost.pulses > one_shot_pulses + 32 * 4 - 1 and cost.reads == cost.pulses - one_shot_pulses
    assert cost.time_s == pytest.approx(cost.pulses * wv.t_pulse + cost.reads * wv.t_read)
    assert cost.energy_j == pytest.approx(cost.pulses * wv.e_pulse + cost.reads * wv.e_read)
    keys = {"cells", "verified_cells", "pulses", "reads", "failed_cells", "time_s", "energy_j"}
    assert set(cost.to_dict()) >= keys
    assert programming_cost(model).to_dict() == cost.to_dict()  # preset=None: each tile's own spec


def test_bad_masks_and_foreign_tiles_are_clear_errors():
    preset = load_preset("ideal")
    layer = _layer(preset, 6, 4, torch.randn(4, 6), verified=False)
    tile = _tile(layer)
    with pytest.raises(TSBError, match=r"\(4, 6\)"):
        set_verify_mask(tile, torch.ones(6, 4, dtype=torch.bool))
    with pytest.raises(TSBError, match="bool"):
        set_verify_mask(tile, torch.ones(4, 6))
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    plain = AnalogLinear(6, 4, rpu_config=TorchInferenceRPUConfig()).eval()
    with pytest.raises(TSBError, match="rpu_config"):
        set_verify_mask(_tile(plain), None)


def test_state_survives_deepcopy_and_equality_is_config_only():
    import copy

    preset = load_preset("nvcim-gaussian")
    layer = _layer(preset, 6, 4, torch.randn(4, 6), verified=False)
    tile = _tile(layer)
    set_verify_mask(tile, torch.eye(4, 6, dtype=torch.bool))
    layer.program_analog_weights()
    clone = copy.deepcopy(layer)
    ctile = _tile(clone)
    assert torch.equal(get_verify_mask(ctile), get_verify_mask(tile))
    assert tile_programming_stats(ctile) == tile_programming_stats(tile)
    model: WriteVerifyNoiseModel = ctile.rpu_config.noise_model
    assert model.cell_pulses is None  # per-cell counts are not pickled (checkpoint size)
    assert model == tile.rpu_config.noise_model
