"""The fast analog evaluation path against AIHWKit's own torch-tile forward (the source of truth).

Noise-free parts must agree to float rounding; a quantiser can turn a 1e-7 difference into one step, so a
tiny fraction of elements may differ by one DAC/ADC step. The output noise is drawn in AIHWKit's order and
shape, so with the same torch seed the noisy outputs agree as well; with different seeds its statistics do.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsb_aihw.analog import to_analog
from tsb_aihw.analog import fast_eval
from tsb_aihw.analog.fast_eval import FastLayer, analog_layers, fast_eval_enabled, fast_forward, set_fast_eval
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy

from helpers import digits, digits_cnn

pytestmark = pytest.mark.usefixtures("fast_cpu")
warnings.filterwarnings("ignore", module="aihwkit")


class Net(nn.Module):
    """Convs with awkward geometry (strides, padding, dilation, a 1x1) and a linear head."""

    def __init__(self, c: int = 5) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, c, 3, padding=1, bias=True)
        self.b = nn.Conv2d(c, 12, 3, stride=2, padding=2, dilation=2, bias=False)
        self.p = nn.Conv2d(12, 12, 1, bias=False)
        self.fc = nn.Linear(12 * 4 * 4, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a(x))
        x = torch.relu(self.b(x))
        x = self.p(x)
        return self.fc(x.flatten(1))


def chip(preset: str = "pcm", t: float = 3600.0, seed: int = 0, **overrides) -> nn.Module:
    """Net on small tiles (input splits not aligned to channels: 45 -> 15+15+15), programmed and drifted."""
    torch.manual_seed(seed)
    kw = dict(mapping__max_input_size=20, mapping__max_output_size=8)
    if preset in ("ideal", "nvcim-gaussian"):
        kw = {}
    analog = to_analog(Net().eval(), load_preset(preset, **kw, **overrides), verify="none")
    analog.program_analog_weights()
    if t > 0:
        analog.drift_analog_weights(t)
    return analog


def forward_both(analog: nn.Module, x: torch.Tensor, seed: int = 1, seed_fast: int | None = None):
    torch.manual_seed(seed)
    ref = analog(x)
    torch.manual_seed(seed if seed_fast is None else seed_fast)
    with fast_forward(analog) as skipped:
        fast = analog(x)
    assert not skipped
    return ref, fast


def assert_matches(ref: torch.Tensor, fast: torch.Tensor, min_fraction: float = 0.999) -> None:
    close = torch.isclose(fast, ref, rtol=1e-5, atol=1e-5)
    assert close.float().mean().item() >= min_fraction, (fast - ref).abs().max()


def test_tiles_are_split_off_channel_boundaries():
    analog = chip(periphery__out_noise=0.0)
    layer = dict(analog.named_modules())["b"]
    assert layer.analog_module.in_sizes == [15, 15, 15]  # 5 channels x 9: a split inside channels 1 and 3
    assert layer.analog_module.out_sizes == [6, 6]


@pytest.mark.parametrize("overrides", [
    dict(out_noise=0.0),
    dict(out_noise=0.0, dac_bits=6, adc_bits=5),
    dict(out_noise=0.0, noise_management="max"),
    dict(out_noise=0.0, noise_management="none", inp_bound=2.0),
    dict(out_noise=0.0, dac_bits=None, adc_bits=None),
])
def test_noise_free_forward_matches_aihwkit(overrides):
    analog = chip(**{f"periphery__{k}": v for k, v in overrides.items()})
    x = torch.randn(6, 3, 8, 8)
    ref, fast = forward_both(analog, x)
    assert_matches(ref, fast)
    for name, layer in analog_layers(analog):  # layer by layer, too
        x_l = torch.randn(4, 7, 9, 9)[:, :layer.in_channels] if hasattr(layer, "kernel_size") \
            else torch.randn(4, layer.in_features)
        if name == "p":
            x_l = torch.randn(4, 12, 5, 5)
        ref_l = layer(x_l)
        assert_matches(ref_l, FastLayer(layer)(x_l))


def test_drift_compensation_and_scales_are_applied():
    analog = chip(periphery__out_noise=0.0, t=86400.0 * 30)
    alphas = [float(t.alpha.reshape(-1)[0]) for t in analog.analog_tiles()]
    assert max(abs(a - 1.0) for a in alphas) > 0.05  # a month of drift: compensation is far from 1
    ref, fast = forward_both(analog, torch.randn(4, 3, 8, 8))
    assert_matches(ref, fast)


def test_same_seed_same_output_noise_as_aihwkit():
    analog = chip()  # pcm periphery: out_noise 0.04, 8-bit DAC/ADC
    ref, fast = forward_both(analog, torch.randn(5, 3, 8, 8))
    assert_matches(ref, fast)


def test_output_noise_statistics_match_aihwkit():
    """Different seeds: the noise differs, its spread around the noise-free output does not."""
    noisy, clean = chip(), chip(periphery__out_noise=0.0)
    layer_n, layer_c = dict(noisy.named_modules())["b"], dict(clean.named_modules())["b"]
    x = torch.randn(64, 5, 12, 12)
    base = layer_c(x)
    torch.manual_seed(3)
    dev_ref = layer_n(x) - base
    torch.manual_seed(4)
    dev_fast = FastLayer(layer_n)(x) - base
    assert not torch.allclose(dev_ref, dev_fast)
    assert dev_ref.std().item() > 0.01
    assert dev_fast.std().item() == pytest.approx(dev_ref.std().item(), rel=0.03)
    assert abs(dev_fast.mean().item() - dev_ref.mean().item()) < 0.1 * dev_ref.std().item()


@pytest.mark.parametrize("preset", ["ideal", "nvcim-gaussian"])
def test_perfect_io_folds_into_native_kernels(preset):
    analog = chip(preset, t=0.0)
    fast = FastLayer(dict(analog.named_modules())["b"])
    assert fast.dense is not None
    ref, out = forward_both(analog, torch.randn(3, 3, 8, 8))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_unsupported_layer_falls_back_with_one_warning():
    analog = chip(periphery__bound_management="iterative")
    fast_eval._warned.clear()
    x = torch.randn(3, 3, 8, 8)
    torch.manual_seed(1)
    ref = analog(x)
    with pytest.warns(RuntimeWarning) as record:
        with fast_forward(analog) as skipped:
            torch.manual_seed(1)
            out = analog(x)
    assert set(skipped) == {"a", "b", "p", "fc"}
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 4 and all("bound management" in m for m in messages)
    assert any("analog layer 'a'" in m for m in messages)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # AIHWKit's own forward: bit-identical
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fast_forward(analog):  # warned once per layer and reason
            pass


def test_forward_is_restored_and_training_uses_aihwkit():
    analog = chip(periphery__out_noise=0.0)
    x = torch.randn(2, 3, 8, 8)
    with fast_forward(analog):
        assert all("forward" in layer.__dict__ for _, layer in analog_layers(analog))
        analog.train()
        with torch.enable_grad():
            y = analog(x.requires_grad_())
        assert y.requires_grad  # AIHWKit's autograd forward, not the eval-only fast path
        analog.eval()
    assert not any("forward" in layer.__dict__ for _, layer in analog_layers(analog))


def test_switch_default_env_and_override(monkeypatch):
    monkeypatch.delenv(fast_eval.ENV_VAR, raising=False)
    set_fast_eval(None)
    assert fast_eval_enabled() is True
    monkeypatch.setenv(fast_eval.ENV_VAR, "0")
    assert fast_eval_enabled() is False
    assert fast_eval_enabled(True) is True
    set_fast_eval(True)
    try:
        assert fast_eval_enabled() is True
    finally:
        set_fast_eval(None)
    monkeypatch.setenv(fast_eval.ENV_VAR, "maybe")
    with pytest.raises(ConfigError, match="TSB_AIHW_FAST_EVAL"):
        fast_eval_enabled()


def test_evaluate_accuracy_same_with_and_without_fast(monkeypatch):
    train, test = digits(1400)
    torch.manual_seed(0)
    digital = digits_cnn(8, 16).eval()
    analog = to_analog(digital, load_preset("pcm", periphery__out_noise=0.0), verify="none")
    analog.program_analog_weights()
    analog.drift_analog_weights(3600.0)
    loader = DataLoader(test, 128)
    calls = []
    original = FastLayer.__call__
    monkeypatch.setattr(FastLayer, "__call__", lambda self, x: calls.append(1) or original(self, x))
    slow = evaluate_accuracy(analog, loader, fast=False)
    assert not calls
    fast = evaluate_accuracy(analog, loader, fast=True)
    assert calls
    assert abs(fast - slow) <= 1 / len(test)  # a one-step quantiser flip may move one borderline image
    set_fast_eval(False)
    try:
        calls.clear()
        evaluate_accuracy(analog, loader)
        assert not calls
    finally:
        set_fast_eval(None)
    assert evaluate_accuracy(digital, loader) == evaluate_accuracy(digital, loader, fast=True)
