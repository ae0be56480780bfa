"""Backbone registry and the reference architectures (docs/notes/tsb-method.md §5)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.models import backbone_weight_count, get_model, list_models, register_model
from tsb_aihw.models import registry as registry_mod


pytestmark = pytest.mark.usefixtures("fast_cpu")  # no autograd, one thread (see conftest)


def test_registry_lists_and_filters():
    assert {"lenet3", "vgg8", "resnet18"} <= set(list_models())
    assert list_models("res*") == ["resnet18"]
    assert list_models("vgg") == ["vgg8"]


def test_duplicate_registration_is_an_error():
    @register_model(name="_tmp_test_net")
    def _tmp(num_classes=10, width=1.0):
        return nn.Linear(4, num_classes)

    try:
        assert isinstance(get_model("_tmp_test_net", num_classes=3), nn.Linear)
        with pytest.raises(ConfigError, match="already registered"):
            register_model(_tmp, name="_tmp_test_net")
    finally:
        registry_mod._REGISTRY.pop("_tmp_test_net")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="vgg9"), "unknown model 'vgg9'.*lenet3"),
    (dict(name="vgg8", width=0), "width must be a positive"),
    (dict(name="vgg8", num_classes=0), "num_classes"),
    (dict(name="vgg8", depth=3), "bad option"),
])
def test_get_model_rejects_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        get_model(**kwargs)


def test_reference_weight_counts_at_width_1():
    torch.manual_seed(0)
    vgg, res, lenet = get_model("vgg8"), get_model("resnet18"), get_model("lenet3")
    assert backbone_weight_count(vgg) == 12_897_984  # 12.90 M
    assert backbone_weight_count(res) == 11_164_352  # 11.16 M
    assert backbone_weight_count(lenet) == 800 + 51_200 + 16_000
    assert round(backbone_weight_count(vgg) / 1e6, 2) == 12.90
    assert round(backbone_weight_count(res) / 1e6, 2) == 11.16


def test_vgg8_layout():
    m = get_model("vgg8", width=1.0)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert sum(isinstance(mod, nn.BatchNorm2d) for mod in m.modules()) == 6
    assert sum(isinstance(mod, nn.MaxPool2d) for mod in m.modules()) == 3
    assert (m.fc1.in_features, m.fc1.out_features, m.fc2.in_features) == (8192, 1024, 1024)
    # Kaiming-normal fan_out: std = sqrt(2 / (out * k * k)) on the biggest conv
    assert m.conv6.weight.std().item() == pytest.approx(math.sqrt(2 / (512 * 9)), rel=0.02)


def test_resnet18_layout():
    m = get_model("resnet18")
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(mod, nn.MaxPool2d) for mod in m.modules())
    blocks = [mod for n, mod in m.named_modules() if n.count(".") == 1 and n.startswith("layer")]
    assert len(blocks) == 8
    assert [b.shortcut is not None for b in blocks] == [False, False, True, False, True, False, True, False]
    assert m.layer2[0].shortcut[0].kernel_size == (1, 1)
    assert m.fc.in_features == 512


@pytest.mark.parametrize("name, shape", [("lenet3", (2, 1, 32, 32)), ("vgg8", (2, 3, 32, 32)),
                                         ("resnet18", (2, 3, 32, 32))])
def test_forward_shapes_at_small_width(name, shape):
    torch.manual_seed(0)
    m = get_model(name, num_classes=7, width=0.125).eval()
    assert m(torch.randn(shape)).shape == (2, 7)


def test_width_rounds_channels_to_multiples_of_8():
    m = get_model("vgg8", width=0.25)
    widths = [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert widths == [16, 32, 64, 64, 128, 128]
    assert m.fc1.out_features == 256
    odd = get_model("resnet18", width=0.3)
    assert all(c.out_channels % 8 == 0 for c in odd.modules() if isinstance(c, nn.Conv2d))


def test_lenet3_adapts_to_8x8_digits_and_rejects_too_small_inputs():
    m = get_model("lenet3", input_size=8).eval()  # padding 2 ('same'): 8 -> 4 -> 2, FC 64*2*2
    assert m.fc.in_features == 256 and m(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert get_model("lenet3", input_size=28).fc.in_features == 64 * 4 * 4
    with pytest.raises(ConfigError, match="feature map vanishes"):
        get_model("lenet3", input_size=10, padding=0)
    with pytest.raises(ConfigError, match=r"built for 32x32 inputs.*get_model\('lenet3', input_size=8"):
        get_model("lenet3")(torch.randn(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="vgg8 was built for 32x32"):
        get_model("vgg8", width=0.125)(torch.randn(1, 3, 16, 16))
    assert get_model("vgg8", width=0.125, input_size=16).eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)


def test_in_channels_override():
    m = get_model("lenet3", in_channels=3, width=0.5).eval()
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10)
