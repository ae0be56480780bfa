"""Per-weight programming errors (tsb_aihw.analog.weight_errors) on real AIHWKit tiles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tsb_aihw.analog import to_analog
from tsb_aihw.analog.weight_errors import weight_errors
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model, get_tsb, insert_tsb

from helpers import program_chip


pytestmark = pytest.mark.usefixtures("fast_cpu")
YEAR = 365 * 86400.0


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = insert_tsb(get_model("lenet3", num_classes=10, in_channels=1, input_size=28)).eval()
    nn.init.normal_(get_tsb(m).conv.weight, std=0.1)  # a trained block is non-zero
    return m


def _chip(preset: str, verify="tsb", seed: int = 1, **overrides) -> nn.Module:
    a = to_analog(_model(), load_preset(preset, **overrides), verify=verify).eval()
    program_chip(a, seed)
    return a


def test_ideal_device_has_zero_error_and_layer_units():
    errs = weight_errors(_chip("ideal"), t=0.0)
    names = [la.name for la in errs.layers]
    assert names == ["conv1", "conv2", "fc", "tsb.conv"]
    for la in errs.layers:
        assert np.abs(la.errors).max() < 1e-5, la.name
    assert {la.group for la in errs.layers} == {"backbone", "tsb"}


def test_verified_block_is_tighter_than_one_shot_backbone_and_drift_widens():
    a = _chip("pcm")
    t0 = weight_errors(a, t=0.0).summary("group+verified")
    assert set(t0) == {"backbone (one-shot)", "tsb (verified)"}
    # PCM one-shot programming spread is several % of max|W|; write-verify to 1 % of g_max is far tighter
    assert t0["tsb (verified)"]["std"] < 0.5 * t0["backbone (one-shot)"]["std"]
    assert 0.005 < t0["backbone (one-shot)"]["std"] < 0.1
    later = weight_errors(a, t=YEAR, seed=3).summary("group")
    assert later["backbone"]["std"] > 1.3 * t0["backbone (one-shot)"]["std"]  # drift + read noise
    assert later["tsb"]["std"] > t0["tsb (verified)"]["std"]  # verify fixes programming only, not drift


def test_drifted_errors_are_seeded_and_leave_the_chip_untouched():
    a = _chip("pcm")
    before = [t.tile.get_weights().clone() for t in a.analog_tiles()]
    e1 = weight_errors(a, t=86400.0, seed=7)
    e2 = weight_errors(a, t=86400.0, seed=7)
    e3 = weight_errors(a, t=86400.0, seed=8)
    assert all(np.array_equal(x.errors, y.errors) for x, y in zip(e1.layers, e2.layers))
    assert not np.array_equal(e1.layers[0].errors, e3.layers[0].errors)
    after = [t.tile.get_weights() for t in a.analog_tiles()]
    assert all(torch.equal(x, y) for x, y in zip(before, after))


def test_split_by_verified_follows_the_verify_setting():
    assert set(weight_errors(_chip("pcm", verify="all")).split("verified")) == {"verified"}
    assert set(weight_errors(_chip("pcm", verify="none")).split("verified")) == {"one-shot"}
    pooled = weight_errors(_chip("pcm")).split(None)["all weights"]
    assert pooled.size == sum(m.numel() for n, m in _model().named_parameters() if n.endswith("weight")
                              and m.dim() > 1)


def test_nvcim_error_scale_matches_sigma():
    """NVCIM Gaussian: per-weight std 0.7776 sigma of the tile's abs-max (per layer: no tiling at these sizes)."""
    errs = weight_errors(_chip("nvcim-gaussian", verify="none", noise__sigma=0.1)).summary("group")
    assert errs["backbone"]["std"] == pytest.approx(0.7776 * 0.1, rel=0.15)


def test_errors_name_the_problem():
    a = to_analog(_model(), load_preset("pcm"), verify="tsb").eval()
    with pytest.raises(ConfigError, match="programmed"):
        weight_errors(a)
    program_chip(a, 0)
    with pytest.raises(ConfigError, match=">= 0"):
        weight_errors(a, t=-1)
    with pytest.raises(ConfigError, match="split"):
        weight_errors(a).split("layer")
