"""read_back / load_read_back: a digital twin with read-back weights computes what the chip computes."""
from __future__ import annotations

import copy

import pytest
import torch

from tsb_aihw.analog import load_read_back, read_back, to_analog
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model, insert_tsb


pytestmark = pytest.mark.usefixtures("fast_cpu")  # no autograd, one torch thread (conftest.py)

GEN = torch.Generator().manual_seed(5)
X = {"vgg8": torch.randn(4, 3, 32, 32, generator=GEN), "lenet3": torch.randn(4, 1, 32, 32, generator=GEN)}


def _model(name="vgg8", seed=0):
    torch.manual_seed(seed)
    model = insert_tsb(get_model(name, width=0.125 if name == "vgg8" else 0.5).eval(), k=8)
    with torch.no_grad():
        model.tsb.conv.weight.normal_(0, 0.1)
    return model


def _twin_error(analog, model, weights, x) -> tuple[float, float, float]:
    twin = load_read_back(copy.deepcopy(model), weights)
    with torch.no_grad():
        ya, yt, yd = analog(x), twin(x), model(x)
    return (ya - yt).abs().max().item(), (ya - yd).abs().max().item(), ya.abs().max().item()


def test_nvcim_twin_reproduces_the_analog_forward():
    torch.manual_seed(0)
    model = _model()
    analog = to_analog(model, load_preset("nvcim-gaussian"))
    analog.program_analog_weights()
    err, noise_effect, scale = _twin_error(analog, model, read_back(analog), X["vgg8"])
    assert err < 1e-5 * scale and noise_effect > 0.05 * scale  # noise matters; the twin captures it


def test_pcm_twin_after_drift_with_tile_arrays_and_drift_compensation():
    # perfect IO and no read noise so that the chip is deterministic after programming (drift: nu fixed)
    preset = load_preset("pcm", periphery__is_perfect=True, periphery__out_noise=0.0, noise__read_noise_scale=0.0,
                         mapping__max_input_size=256, mapping__max_output_size=8)
    torch.manual_seed(0)
    model = _model("lenet3")
    analog = to_analog(model, preset)
    analog.program_analog_weights()
    assert len(list(dict(analog.named_analog_layers())["conv2"].analog_tiles())) == 2 * 4  # [32, 400]
    weights = read_back(analog, t=86400.0)
    analog.drift_analog_weights(86400.0)
    assert any(float(t.alpha.reshape(-1)[0]) != 1.0 for t in analog.analog_tiles())  # compensation is active
    err, noise_effect, scale = _twin_error(analog, model, weights, X["lenet3"])
    assert err < 1e-5 * scale and noise_effect > 0.05 * scale


def test_read_back_restores_the_chip_state_and_averages_reads():
    preset = load_preset("pcm", periphery__is_perfect=True, periphery__out_noise=0.0)
    torch.manual_seed(0)
    analog = to_analog(_model("lenet3"), preset)
    analog.program_analog_weights()
    with torch.no_grad():
        before = analog(X["lenet3"])
    spread = {}
    for n in (1, 8):
        a, b = read_back(analog, t=3600.0, n_reads=n)["conv2"], read_back(analog, t=3600.0, n_reads=n)["conv2"]
        spread[n] = (a - b).var().item()
    with torch.no_grad():
        assert torch.equal(analog(X["lenet3"]), before)
    assert 4 < spread[1] / spread[8] < 16  # read noise averages down ~1/n


def test_read_back_shapes_and_errors():
    torch.manual_seed(0)
    model = _model()
    analog = to_analog(model, load_preset("ideal"))
    with pytest.raises(ConfigError, match="program_analog_weights"):
        read_back(analog, t=1.0)
    analog.program_analog_weights()
    weights = read_back(analog)
    assert {k: tuple(v.shape) for k, v in weights.items()} == {
        n: tuple(m.weight.shape) for n, m in model.named_modules() if n in weights}
    torch.testing.assert_close(weights["conv3"], model.conv3.weight, rtol=1e-6, atol=1e-6)  # ideal device
    with pytest.raises(ConfigError, match="n_reads"):
        read_back(analog, n_reads=0)
    with pytest.raises(ConfigError, match="eval"):
        read_back(analog.train())
    with pytest.raises(ConfigError, match="no digital layer"):
        load_read_back(torch.nn.Linear(2, 2), weights)
    with pytest.raises(ConfigError, match="shape"):
        load_read_back(insert_tsb(get_model("vgg8", width=0.25), k=8), weights)
