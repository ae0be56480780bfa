"""The statistical mode's bf16 product (issue 36): the same model as the fp32 product, and never a silent change.

What bf16 changes: the programmed weights enter the product rounded to 8 significant bits (2^-9 relative), the
DAC codes exactly (integers <= 127 at 8 bits); the product accumulates in fp32 and its result stays fp32
(``_bf16_matmul``'s second pass); noise, ADC and scales are fp32. So at a fixed chip the outputs move by the
weights' rounding only: a fixed error per output, far below what programming noise does to the same layer,
with no offset and the same output noise. The layers are the shipped presets' (pcm: 512x512 tiles, 8-bit
DAC/ADC, output noise; nvcim-gaussian: one exact tile per layer), programmed and drifted to 1 day.

Note: on CPUs without AVX512-BF16/AMX (the AMD EPYCs of this project) bf16 products are emulated and ~70x
slower than fp32, so these layers are small; ``auto`` never picks bf16 there.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from helpers import tiny_study
from test_analog_fast_eval_bias import activations, moments
from torch import nn

from tsb_aihw.analog import fast_eval, to_analog
from tsb_aihw.analog.fast_eval import FastLayer, chip_forward, preset_product, resolve_product, set_fast_eval
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError

pytestmark = pytest.mark.usefixtures("fast_cpu")
warnings.filterwarnings("ignore", module="aihwkit")

AMD = {"fpu", "sse2", "avx", "avx2", "fma"}  # this project's AMD EPYC: no native bf16
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _fresh_switch(monkeypatch):
    """Each test starts from the default switch, with its own record of warnings and of the machine's bf16."""
    monkeypatch.setattr(fast_eval, "_warned", set())
    monkeypatch.setattr(fast_eval, "_native", {})
    set_fast_eval(None)
    yield
    set_fast_eval(None)


def layer_pair(preset: str, conv: bool, overrides: dict | None = None) -> tuple[nn.Module, nn.Module]:
    """(analog layer programmed and drifted to 1 d on ``preset``, the digital layer it was made from): a 3x3 conv
    64 -> 64 (K = 576: two pcm input splits) or a 1024 -> 96 linear."""
    torch.manual_seed(0)
    layer = nn.Conv2d(64, 64, 3, padding=1, bias=True) if conv else nn.Linear(1024, 96)
    analog = to_analog(nn.Sequential(layer).eval(), load_preset(preset, overrides=overrides), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    return dict(analog.named_modules())["0"], layer.eval()


def test_bf16_matmul_result_is_fp32():
    """The second pass takes up the rounding of the product's bf16 output: ``hi + lo`` is the fp32 product of the
    bf16 inputs to ~2^-16 relative, where the plain bf16 product is off by up to 2^-9."""
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(48, 300, generator=g) * 0.05).bfloat16()
    q = torch.randint(-127, 128, (3, 300, 70), generator=g).bfloat16()  # DAC codes: exact in bf16
    exact = w.double() @ q.double()
    plain = torch.matmul(w, q).double()
    for got in (fast_eval._bf16_matmul(w, q), fast_eval._bf16_matmul(w, q, out=torch.zeros(3, 48, 70))):
        assert got.dtype == torch.float32
        rel = float(((got.double() - exact).abs() / exact.abs().clamp_min(1.0)).max())
        assert rel < 2e-5, rel
    assert float(((plain - exact).abs() / exact.abs().clamp_min(1.0)).max()) > 1e-3  # what the second pass fixes
    x = torch.randn(5, 7, 300, generator=g).bfloat16()  # linear rows: [..., K] @ [K, N]
    got = fast_eval._bf16_matmul(x, w.T)
    assert got.shape == (5, 7, 48) and torch.allclose(got.double(), x.double() @ w.T.double(), rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("conv", [True, False], ids=["conv", "linear"])
def test_pcm_bf16_outputs_agree_with_fp32(conv):
    """pcm (8-bit DAC/ADC, output noise): at the same noise draws the bf16 outputs differ from fp32 by the weights'
    rounding only: no offset (< 2 % of the output noise sd), a spread of ~0.25 noise sd (measured 0.24-0.28; one
    ADC step flips where the rounding crosses a boundary), i.e. < 1 % more variance than the chip's own output
    error (programming noise, drift, quantisation, output noise: measured 0.5 %); and the output noise itself is
    unchanged (std ratio over 40-60 draws)."""
    layer, digital = layer_pair("pcm", conv)
    x = activations(conv)
    f32, b16 = FastLayer(layer, "statistical", "fp32"), FastLayer(layer, "statistical", "bf16")
    assert b16.product == "bf16" and f32.product == "fp32"
    torch.manual_seed(5)
    ref = f32(x)
    torch.manual_seed(5)
    got = b16(x)
    assert got.dtype == torch.float32
    torch.manual_seed(6)
    noise_sd = float((f32(x) - ref).std()) / 2**0.5  # two draws of the output noise
    d = got - ref
    chip_error = float((ref - digital(x)).std())  # programming noise, drift, quantisation, output noise
    assert abs(float(d.mean())) < 0.02 * noise_sd, (float(d.mean()), noise_sd)
    assert 0.05 * noise_sd < float(d.std()) < 0.4 * noise_sd, (float(d.std()), noise_sd)
    assert float(d.std()) < 0.1 * chip_error, (float(d.std()), chip_error)  # < 1 % of the error's variance
    reps = 40 if conv else 60
    v32 = moments(f32, x, seed=11, reps=reps)[1]
    v16 = moments(b16, x, seed=12, reps=reps)[1]
    assert abs(float((v16.mean() / v32.mean()).sqrt()) - 1) < 0.01


@pytest.mark.parametrize("conv", [True, False], ids=["conv", "linear"])
def test_nvcim_gaussian_bf16_outputs_agree_with_fp32(conv):
    """nvcim-gaussian (exact periphery: one native bf16 conv / product of the unquantised activations): the
    rounding of inputs, weights (and, for the conv, its output) is under 1 % of the programming noise's effect
    on the outputs, with no offset."""
    layer, digital = layer_pair("nvcim-gaussian", conv)
    x = activations(conv)
    f32, b16 = FastLayer(layer, "statistical", "fp32"), FastLayer(layer, "statistical", "bf16")
    assert b16.product == "bf16" and b16.dense is not None and b16.dense.dtype == torch.bfloat16
    ref, got = f32(x), b16(x)
    assert got.dtype == torch.float32
    chip_error = float((ref - digital(x)).std())
    d = got - ref
    assert float(d.std()) < 0.01 * chip_error, (float(d.std()), chip_error)
    assert abs(float(d.mean())) < 0.001 * chip_error


def test_unrepresentable_dac_falls_back_to_fp32_with_one_warning():
    """A 10-bit DAC (511 levels per sign) does not fit bf16's exact integers (256): fp32, one warning for the
    whole model and every later layer, and the fp32 numbers."""
    layer, _ = layer_pair("pcm", True, {"periphery.dac_bits": 10})
    x = activations(True)
    with pytest.warns(RuntimeWarning, match=r"511 levels.*256.*fp32 product") as caught:
        fast = FastLayer(layer, "statistical", "bf16")
        FastLayer(layer, "statistical", "bf16")
        FastLayer(layer, "statistical", "auto")
    assert len([w for w in caught if "bf16" in str(w.message)]) == 1
    assert fast.product == "fp32"
    torch.manual_seed(2)
    a = fast(x)
    torch.manual_seed(2)
    assert torch.equal(a, FastLayer(layer, "statistical", "fp32")(x))


def test_bf16_only_in_the_statistical_mode():
    with pytest.raises(ConfigError, match="statistical mode only"):
        set_fast_eval("exact", product="bf16")
    with pytest.raises(ConfigError, match="not a matrix-product precision"):
        set_fast_eval("statistical", product="fp16")
    layer, _ = layer_pair("pcm", False)
    model = nn.Sequential(layer)
    with pytest.warns(RuntimeWarning, match="statistical mode only, and the mode is 'exact'"):
        with chip_forward(model, "exact", "bf16"):
            assert layer.forward.product == "fp32"
    set_fast_eval("statistical", product="bf16")
    with chip_forward(model):
        assert layer.forward.product == "bf16"
    set_fast_eval("statistical")  # a call states the whole setting: the product is back to fp32
    with chip_forward(model):
        assert layer.forward.product == "fp32"


def test_auto_follows_the_cpu_flags_and_the_preset():
    """auto: bf16 only with AMX / AVX512-BF16 (never on the AMD flags), and never for the ideal preset (no
    programming noise: bf16 rounding would be its only error); an explicit bf16 is kept there."""
    pcm, ideal, nvcim = (load_preset(p) for p in ("pcm", "ideal", "nvcim-gaussian"))
    for flags, want in ((AMD, "fp32"), (AMD | {"amx_bf16", "amx_tile"}, "bf16"), (AMD | {"avx512_bf16"}, "bf16")):
        assert preset_product("auto", pcm, "statistical", flags=flags) == want
        assert preset_product("auto", nvcim, "statistical", flags=flags) == want
    amx = AMD | {"amx_bf16"}
    assert preset_product("auto", ideal, "statistical", flags=amx) == "fp32"
    assert preset_product("bf16", ideal, "statistical", flags=AMD) == "bf16"
    assert preset_product("auto", pcm, "exact", flags=amx) == "fp32"
    assert preset_product("fp32", pcm, "statistical", flags=amx) == "fp32"
    io = pcm.rpu_config(False)
    assert resolve_product("auto", "statistical", CPU, io.forward, io.noise_model, flags=amx) == ("bf16", None)


def test_auto_on_this_machine_follows_its_flags():
    layer, _ = layer_pair("pcm", False)
    expected = "bf16" if fast_eval.native_bf16_device(CPU) else "fp32"
    assert FastLayer(layer, "statistical", "auto").product == expected


def test_cell_keys_differ_by_product_and_the_default_keeps_its_keys(tmp_path, monkeypatch):
    """A default config keys nothing new (identity, cells: as before the field existed); bf16 cells have their
    own keys; auto is keyed by what it resolves to here (fp32 on an AMD: the default's key); results record the
    resolved product."""
    from tsb_aihw.pipeline.config import keyed_tree, study_config_from_dict
    from tsb_aihw.pipeline.methods import BASE_METHODS
    from tsb_aihw.pipeline.study import study_identity
    from tsb_aihw.pipeline.tasks import StudyContext

    def ctx(**extra):
        return StudyContext(study_config_from_dict(tiny_study(preset="pcm", **extra)), tmp_path / "s", progress=False)

    spec = BASE_METHODS["full_noise_injection"]
    default, bf16, auto = ctx(), ctx(fast_eval_product="bf16"), ctx(fast_eval_product="auto")
    assert "fast_eval_product" not in keyed_tree(default.cfg)
    assert "fast_eval_product" not in str(study_identity(default.cfg))
    key = default.cell_key(spec, 0, default.preset)
    assert default.chip_eval() == {"mode": "statistical", "product": "fp32"}
    assert bf16.cell_key(spec, 0, bf16.preset) != key and bf16.chip_eval()["product"] == "bf16"
    monkeypatch.setattr(fast_eval, "_native", {"cpu": False})
    assert auto.cell_key(spec, 0, auto.preset) == key and auto.chip_eval()["product"] == "fp32"
    monkeypatch.setattr(fast_eval, "_native", {"cpu": True})
    assert auto.cell_key(spec, 0, auto.preset) == bf16.cell_key(spec, 0, bf16.preset)
    assert auto.chip_eval()["product"] == "bf16"
    with pytest.raises(ConfigError, match="fast_eval_product: bf16 is part of the statistical mode"):
        study_config_from_dict(tiny_study(fast_eval="exact", fast_eval_product="bf16"))
