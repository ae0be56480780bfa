"""The statistical fast mode against AIHWKit: the same model, another random stream.

Noise-free parts must agree to float rounding (as in the exact mode); with output noise, the error of a
layer's output around its noise-free value must have AIHWKit's distribution (moments and a two-sample KS
test), and chip accuracies must agree within their confidence interval. Unsupported settings keep
AIHWKit's forward with a warning, as in the exact mode.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from tsb_aihw.analog import fast_eval, to_analog
from tsb_aihw.analog.fast_eval import FastLayer, fast_eval_mode, fast_forward, set_fast_eval
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy

from helpers import digits, digits_cnn
from test_analog_fast_eval import assert_matches, chip

pytestmark = pytest.mark.usefixtures("fast_cpu")
warnings.filterwarnings("ignore", module="aihwkit")


def noise_free(layer, x: torch.Tensor) -> torch.Tensor:
    """The same chip's layer output without output noise (exact mode, which matches AIHWKit noise-free).

    A second chip built with out_noise 0 is not the same chip: drift compensation measures its baseline
    through the noisy periphery, which moves the random stream and alpha."""
    ios = [t.rpu_config.forward for t in layer.analog_tiles()]
    saved = [io.out_noise for io in ios]
    for io in ios:
        io.out_noise = 0.0
    try:
        return FastLayer(layer, "exact")(x)
    finally:
        for io, value in zip(ios, saved):
            io.out_noise = value


def errors(analog, name: str, x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Output errors around the noise-free output: (AIHWKit's, the statistical mode's), own seeds each."""
    layer = dict(analog.named_modules())[name]
    base = noise_free(layer, x)
    torch.manual_seed(seed)
    ref = layer(x)
    torch.manual_seed(seed + 1)
    out = FastLayer(layer, "statistical")(x)
    return (ref - base).flatten(), (out - base).flatten()


def ks_p(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample KS p-value. Rounded to 1e-4 first: with an ADC the errors sit on discrete atoms, and
    1e-7 summation-order offsets between two implementations would split every atom and fool the test."""
    return float(stats.ks_2samp(a.round(decimals=4).numpy(), b.round(decimals=4).numpy()).pvalue)


@pytest.mark.parametrize("overrides", [
    {}, {"periphery__noise_management": "max"}, {"periphery__noise_management": "none"},
    {"periphery__adc_bits": 6, "periphery__dac_bits": 5}, {"periphery__dac_bits": None, "periphery__adc_bits": None},
])
def test_noise_free_statistical_matches_aihwkit(overrides):
    """Without output noise nothing is random: the fused forward must give AIHWKit's numbers."""
    analog = chip(periphery__out_noise=0.0, **overrides)
    x = torch.randn(6, 3, 8, 8)
    torch.manual_seed(0)
    ref = analog(x)
    with fast_forward(analog, "statistical") as skipped:
        out = analog(x)
    assert not skipped
    assert_matches(ref, out)


@pytest.mark.parametrize("adc_bits", [8, None])
@pytest.mark.parametrize("name,shape", [("a", (48, 3, 10, 10)), ("b", (48, 5, 12, 12)), ("p", (48, 12, 6, 6))])
def test_output_error_distribution_matches_aihwkit_pcm(name, shape, adc_bits):
    """pcm periphery (8-bit, out_noise 0.04, abs-max NM) on split tiles, drifted: error moments and KS test."""
    analog = chip(periphery__adc_bits=adc_bits)
    err_ref, err_fast = errors(analog, name, torch.randn(*shape), seed=5)
    assert not torch.equal(err_ref, err_fast)  # another random stream
    assert err_ref.std().item() > 0.01
    assert err_fast.std().item() == pytest.approx(err_ref.std().item(), rel=0.03)
    assert abs(err_fast.mean().item() - err_ref.mean().item()) < 0.05 * err_ref.std().item()
    assert stats.kurtosis(err_fast.numpy()) == pytest.approx(stats.kurtosis(err_ref.numpy()), abs=0.3)
    assert ks_p(err_ref, err_fast) > 1e-3


def test_distribution_tests_detect_a_wrong_noise_level():
    """The tests above can fail: 10 % more output noise moves the std by > 3 % and the KS p below 1e-3."""
    x = torch.randn(48, 5, 12, 12)
    ref, _ = errors(chip(), "b", x, seed=5)
    _, louder = errors(chip(periphery__out_noise=0.044), "b", x, seed=5)
    assert louder.std().item() > 1.03 * ref.std().item()
    assert ks_p(ref, louder) < 1e-3


def test_full_size_pcm_tiles_distribution():
    """The real pcm preset (512x512 tiles; K = 3*3*64 = 576 -> two input splits) on one conv layer."""
    torch.manual_seed(0)
    analog = to_analog(torch.nn.Sequential(torch.nn.Conv2d(64, 40, 3, padding=1)).eval(), load_preset("pcm"),
                       verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    e_ref, e_out = errors(analog, "0", torch.randn(8, 64, 8, 8), seed=2)
    assert e_out.std().item() == pytest.approx(e_ref.std().item(), rel=0.03)
    assert ks_p(e_ref, e_out) > 1e-3


def test_nvcim_gaussian_is_exact_in_statistical_mode():
    """nvcim-gaussian has an exact MVM (no periphery noise): the statistical mode has nothing to redraw."""
    analog = chip("nvcim-gaussian", t=0.0)
    x = torch.randn(4, 3, 8, 8)
    ref = analog(x)
    with fast_forward(analog, "statistical"):
        out = analog(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("preset", ["pcm", "nvcim-gaussian"])
def test_chip_accuracies_agree_within_ci(preset):
    """Several chips of a small real model: mean accuracy with AIHWKit's forward vs the statistical mode."""
    _, test = digits(1400)
    torch.manual_seed(0)
    digital = digits_cnn(8, 16).eval()
    with torch.enable_grad():  # a quickly trained digits CNN, so accuracies are meaningful
        opt = torch.optim.Adam(digital.parameters(), 1e-2)
        train, _ = digits(1400)
        loader = DataLoader(train, 64, shuffle=True, generator=torch.Generator().manual_seed(0))
        digital.train()
        for _ in range(4):
            for xb, yb in loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(digital(xb), yb).backward()
                opt.step()
        digital.eval()
    test_loader = DataLoader(test, 200)
    diffs, refs = [], []
    for c in range(4):
        torch.manual_seed(100 + c)
        analog = to_analog(digital, load_preset(preset), verify="none").eval()
        analog.program_analog_weights()
        torch.manual_seed(7)
        ref = evaluate_accuracy(analog, test_loader, fast="off")
        torch.manual_seed(8)
        stat = evaluate_accuracy(analog, test_loader, fast="statistical")
        diffs.append(stat - ref)
        refs.append(ref)
    n = len(test)
    mean_acc = sum(refs) / len(refs)
    assert mean_acc > 0.4  # far above chance (0.1), so agreement is informative
    # per-chip difference within the binomial 95 % CI of one evaluation of n images
    ci = 1.96 * (mean_acc * (1 - mean_acc) / n) ** 0.5
    assert abs(sum(diffs) / len(diffs)) <= ci
    assert max(abs(d) for d in diffs) <= 2 * ci


def test_unsupported_setting_falls_back_with_warning_in_statistical_mode():
    analog = chip(periphery__bound_management="iterative")
    fast_eval._warned.clear()
    x = torch.randn(3, 3, 8, 8)
    torch.manual_seed(1)
    ref = analog(x)
    with pytest.warns(RuntimeWarning, match="bound management"):
        with fast_forward(analog, "statistical") as skipped:
            torch.manual_seed(1)
            out = analog(x)
    assert set(skipped) == {"a", "b", "p", "fc"}
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # AIHWKit's own forward, never other numbers


def test_mode_switch_env_and_backward_compatibility(monkeypatch):
    monkeypatch.delenv(fast_eval.ENV_VAR, raising=False)
    set_fast_eval(None)
    assert fast_eval_mode() == fast_eval.DEFAULT_MODE
    assert fast_eval_mode(True) == fast_eval.DEFAULT_MODE and fast_eval_mode(False) == "off"
    for raw, mode in [("0", "off"), ("1", fast_eval.DEFAULT_MODE), ("statistical", "statistical"),
                      ("exact", "exact"), ("off", "off")]:
        monkeypatch.setenv(fast_eval.ENV_VAR, raw)
        assert fast_eval_mode() == mode
    set_fast_eval("statistical")
    try:
        assert fast_eval_mode() == "statistical" and fast_eval_mode("exact") == "exact"
    finally:
        set_fast_eval(None)
    with pytest.raises(ConfigError, match="set_fast_eval"):
        set_fast_eval("fastest")
    with pytest.raises(TypeError):
        set_fast_eval(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FastLayer(dict(chip().named_modules())["a"], "off")


def test_evaluate_accuracy_uses_the_statistical_layers(monkeypatch):
    _, test = digits(1400)
    torch.manual_seed(0)
    analog = to_analog(digits_cnn(8, 16).eval(), load_preset("pcm"), verify="none")
    analog.program_analog_weights()
    modes = []
    original = FastLayer.__call__
    monkeypatch.setattr(FastLayer, "__call__", lambda self, x: modes.append(self.mode) or original(self, x))
    evaluate_accuracy(analog, DataLoader(test, 200), fast="statistical")
    assert modes and set(modes) == {"statistical"}
