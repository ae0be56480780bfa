"""Per-chip BN recalibration: only BN statistics change, and it recovers accuracy on noisy chips."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsb_aihw.baselines import recalibrate_bn
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy, monte_carlo

from helpers import clean_trained, digits, digits_cnn, noisy_copy

warnings.filterwarnings("ignore", module="aihwkit")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    train, test = digits(1400)
    model = clean_trained(lambda: digits_cnn(8, 16), train, epochs=8, lr=3e-3)
    return model, DataLoader(train, 128), DataLoader(test, 512)


def test_only_bn_statistics_change_and_flags_come_back(trained):
    model, calib, _ = trained
    chip = noisy_copy(model, 0.3, seed=0)
    chip.train()
    chip[4].eval()
    params = {k: v.clone() for k, v in chip.named_parameters()}
    stats_before = chip[1].running_mean.clone()
    n = recalibrate_bn(chip, calib, batches=3)
    assert n == 3 * 128
    assert all(torch.equal(v, dict(chip.named_parameters())[k]) for k, v in params.items())
    assert not torch.equal(chip[1].running_mean, stats_before)
    assert chip[1].num_batches_tracked.item() == 3  # reset, then a cumulative average over 3 batches
    assert chip[1].momentum == 0.1 and chip.training and not chip[4].training


def test_statistics_are_the_cumulative_average(trained):
    model, calib, _ = trained
    chip = noisy_copy(model, 0.3, seed=1)
    batches = [x for x, _ in calib][:2]
    recalibrate_bn(chip, calib, batches=2)
    with torch.no_grad():
        means = [chip[0](x).mean(dim=(0, 2, 3)) for x in batches]  # the first BN sees the first conv's output
    assert torch.allclose(chip[1].running_mean, (means[0] + means[1]) / 2, atol=1e-5)


def test_recovers_accuracy_on_noisy_chips(trained):
    model, calib, test = trained
    before, after = [], []
    for seed in range(5):
        chip = noisy_copy(model, 0.3, seed)
        before.append(evaluate_accuracy(chip, test))
        recalibrate_bn(chip, calib, batches=4)
        after.append(evaluate_accuracy(chip, test))
    gain = (sum(after) - sum(before)) / len(before)
    assert gain > 0.02, (before, after)


def test_works_per_chip_on_an_analog_model(trained):
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    model, calib, test = trained
    cfg = TorchInferenceRPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(prog_noise_scale=8.0)
    cfg.forward.is_perfect = True
    cfg.mapping.weight_scaling_omega = 1.0
    chip = convert_to_analog(model, cfg).eval()
    chip.program_analog_weights()
    tile_weights = [t.tile.get_weights().clone() for t in chip.analog_tiles()]
    recalibrate_bn(chip, calib, batches=2)  # analog layers stay in eval mode: programmed tiles are used
    assert all(torch.equal(w, t.tile.get_weights()) for w, t in zip(tile_weights, chip.analog_tiles()))
    assert not chip.training

    plain = monte_carlo(chip, test, chips=4, times=[0], seed=0, progress=False)
    recal = monte_carlo(chip, test, chips=4, times=[0], seed=0, progress=False,
                        per_chip=lambda m, i: {"samples": recalibrate_bn(m, calib, batches=4)})
    assert recal.chip_extras[0] == {"samples": 512}
    assert recal.summaries[0].mean > plain.summaries[0].mean + 0.01, (plain.accuracies, recal.accuracies)


def test_errors_leave_statistics_untouched(trained):
    model, _, _ = trained
    chip = copy.deepcopy(model)
    before = chip[1].running_var.clone()
    with pytest.raises(ConfigError, match="no samples"):
        recalibrate_bn(chip, [])
    assert torch.equal(chip[1].running_var, before)
    with pytest.raises(ConfigError, match="no BatchNorm"):
        recalibrate_bn(nn.Linear(2, 2), [])
    with pytest.raises(ConfigError, match="batches"):
        recalibrate_bn(chip, [], batches=0)


def test_no_autograd_graph_and_the_same_statistics_as_with_one(trained):
    """The re-estimation runs without autograd (no graph through the analog tiles) and gives bit-identical
    statistics to a forward with autograd on (what it did before)."""
    model, calib, _ = trained
    chip = noisy_copy(model, 0.3, seed=2)
    twin = copy.deepcopy(chip)
    grads: list[bool] = []
    handle = chip[0].register_forward_hook(lambda m, i, o: grads.append(o.requires_grad))
    recalibrate_bn(chip, calib, batches=2)
    handle.remove()
    assert grads == [False, False]
    twin.eval()
    for bn in (m for m in twin.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    for x, _ in list(calib)[:2]:
        assert twin(x).requires_grad  # the old path: the same forward with a graph
    assert all(torch.equal(a, b) for a, b in zip(chip.state_dict().values(), twin.state_dict().values()))


def pcm_chip(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` on the pcm preset (output noise, 8-bit DAC/ADC: the fast path's noisy, quantised case),
    programmed and drifted an hour."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset

    torch.manual_seed(seed)
    analog = to_analog(copy.deepcopy(model), load_preset("pcm"), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(3600.0)
    return analog


def bn_state(model: nn.Module) -> list[torch.Tensor]:
    return [v for k, v in model.state_dict().items() if "running" in k]


def recalibrated(chip: nn.Module, calib, fast: str, seed: int = 5) -> nn.Module:
    out = copy.deepcopy(chip)
    torch.manual_seed(seed)
    recalibrate_bn(out, calib, batches=3, fast=fast)
    return out


def test_analog_recalibration_runs_on_the_chosen_forward(trained):
    """'exact' and 'statistical' patch every analog layer while BN re-estimates ('off': none), and the
    analog layers' own forwards are back afterwards."""
    from tsb_aihw.analog.fast_eval import analog_layers

    model, calib, _ = trained
    chip = pcm_chip(model)
    layers = [layer for _, layer in analog_layers(chip)]
    for fast, patched in (("exact", True), ("statistical", True), ("off", False)):
        seen: list[bool] = []
        handles = [layer.register_forward_pre_hook(lambda m, a: seen.append("forward" in m.__dict__))
                   for layer in layers]
        recalibrate_bn(chip, calib, batches=1, fast=fast)
        for h in handles:
            h.remove()
        assert seen == [patched] * len(layers), fast
        assert not any("forward" in layer.__dict__ for layer in layers)


def test_exact_fast_recalibration_equals_aihwkits(trained):
    """The exact fast path draws AIHWKit's output noise in its order: with one seed, the statistics are
    AIHWKit's to float rounding."""
    model, calib, _ = trained
    chip = pcm_chip(model)
    ref, fast = recalibrated(chip, calib, "off"), recalibrated(chip, calib, "exact")
    for a, b in zip(bn_state(ref), bn_state(fast)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_statistical_recalibration_agrees_with_aihwkit_within_its_noise(trained):
    """Another noise stream: the statistics differ by no more than two AIHWKit runs with two seeds differ,
    and both move the statistics the same way away from the digital model's."""
    model, calib, _ = trained
    chip = pcm_chip(model)
    ref = bn_state(recalibrated(chip, calib, "off", seed=5))
    ref2 = bn_state(recalibrated(chip, calib, "off", seed=6))
    stat = bn_state(recalibrated(chip, calib, "statistical", seed=5))
    digital = bn_state(model)
    for a, a2, s, d in zip(ref, ref2, stat, digital):
        spread = (a - a2).abs().max().item()
        assert (s - a).abs().max().item() <= 3 * spread + 1e-4, ((s - a).abs().max(), spread)
        shift = (a - d).abs().mean().item()
        assert shift > 5 * spread  # the chip's shift is real, not seed noise ...
        assert (s - a).abs().mean().item() < 0.1 * shift  # ... and the statistical mode reproduces it
