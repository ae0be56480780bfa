"""TinySharedBlock semantics and insert_tsb on registry and torchvision CNNs."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.models import TinySharedBlock, TSBSite, bind_sites, get_model, get_tsb, insert_tsb


pytestmark = pytest.mark.usefixtures("fast_cpu")  # no autograd, one thread (see conftest)


def _grouped_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The same k x k matrix applied to every k-channel group, written independently with einsum."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    groups = x.reshape(n, c // k, k, h, wd)
    return torch.einsum("ij,ngjhw->ngihw", w[:, :, 0, 0], groups).reshape(n, c, h, wd)


# ---------------------------------------------------------------------------------------------- the block
def test_block_has_one_k_by_k_kernel():
    block = TinySharedBlock(16)
    assert [p.shape for p in block.parameters()] == [torch.Size([16, 16, 1, 1])]
    assert sum(p.numel() for p in block.parameters()) == 256


@pytest.mark.parametrize("residual", [True, False])
def test_block_is_exactly_identity_at_init(residual):
    torch.manual_seed(0)
    block = TinySharedBlock(8, residual=residual)
    for x in (torch.randn(3, 32, 5, 5), torch.randn(4, 24)):
        assert torch.equal(block(x), x)


def test_block_applies_one_tied_kernel_groupwise_on_maps_and_vectors():
    torch.manual_seed(0)
    block = TinySharedBlock(4)
    with torch.no_grad():
        block.conv.weight.normal_()
    x = torch.randn(2, 12, 3, 3)
    torch.testing.assert_close(block(x), x + _grouped_reference(x, block.conv.weight))
    v = torch.randn(5, 8)
    torch.testing.assert_close(block(v), block(v.view(5, 8, 1, 1)).view(5, 8))
    plain = TinySharedBlock(4, residual=False)
    with torch.no_grad():
        plain.conv.weight.copy_(block.conv.weight)
    torch.testing.assert_close(plain(x), _grouped_reference(x, block.conv.weight))


def test_block_rejects_bad_k_and_widths():
    with pytest.raises(ConfigError, match="positive int"):
        TinySharedBlock(0)
    with pytest.raises(ConfigError, match="12-channel.*k=8"):
        TinySharedBlock(8)(torch.randn(1, 12, 2, 2))


# ---------------------------------------------------------------------------------------------- insertion
def _sites(model):
    return [s.target for s in model.tsb_sites.values()]


@pytest.mark.parametrize("name, where, expected", [
    ("vgg8", "conv", [f"bn{i}" for i in range(1, 7)]),
    ("vgg8", "stage", ["pool1", "pool2", "pool3"]),
    ("vgg8", "all", [f"bn{i}" for i in range(1, 7)] + ["fc1"]),
    ("resnet18", "stage", ["layer1", "layer2", "layer3", "layer4"]),
    ("lenet3", "conv", ["bn1", "bn2"]),
    ("lenet3", "stage", ["pool1", "pool2"]),
    ("lenet3", ["flatten"], ["flatten"]),
])
def test_sites_and_identity_at_init(name, where, expected):
    torch.manual_seed(0)
    model = get_model(name, width=0.25).eval()
    x = torch.randn(2, model.conv1.in_channels, 32, 32)
    before = model(x)
    insert_tsb(model, where=where)
    assert _sites(model) == expected
    assert torch.equal(model(x), before)  # exactly, not approximately


def test_resnet18_conv_sites_cover_every_conv_bn():
    model = get_model("resnet18", width=0.125)
    insert_tsb(model)
    bns = [n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert _sites(model) == bns and len(bns) == 20  # stem + 16 block convs + 3 projections, each with its BN


def test_identity_in_train_mode_too():
    torch.manual_seed(0)
    model = get_model("vgg8", width=0.125).train()
    ref = copy.deepcopy(model)
    insert_tsb(model)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), ref(x))


def test_auto_k_and_reported_fractions():
    cases = {"vgg8": (64, 12_897_984), "resnet18": (64, 11_164_352), "lenet3": (16, 68_000)}
    for name, (k, backbone) in cases.items():
        model = insert_tsb(get_model(name))
        cfg = model.tsb_config
        assert (cfg["k"], cfg["backbone_weights"], cfg["tsb_weights"]) == (k, backbone, k * k)
        assert sum(p.numel() for p in get_tsb(model).parameters()) == k * k
        assert k * k / backbone < 0.004
    assert 256 / 68_000 == pytest.approx(0.003765, abs=1e-6)  # lenet3: just inside the 0.4% budget


def test_gradients_reach_only_the_block_through_every_site():
    torch.manual_seed(0)
    model = insert_tsb(get_model("lenet3", width=0.5).eval(), where=["bn1", "bn2", "flatten"], k=8)
    for p in model.parameters():
        p.requires_grad_(False)
    model.tsb.conv.weight.requires_grad_(True)
    with torch.enable_grad():
        model(torch.randn(4, 1, 32, 32)).square().sum().backward()
    grad = model.tsb.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("tsb"))


def test_block_is_applied_at_every_site_once_per_forward():
    torch.manual_seed(0)
    model = insert_tsb(get_model("resnet18", width=0.125).eval())
    calls = []
    model.tsb.conv.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    with torch.no_grad():
        model.tsb.conv.weight.normal_(0, 0.1)
    x = torch.randn(2, 3, 32, 32)
    model(x)
    assert len(calls) == len(model.tsb_sites) == 20 and set(calls) == {model.tsb.k}


@pytest.mark.filterwarnings("ignore:k=64 gives 4096 verified weights")
def test_non_divisible_sites_skip_with_record_or_raise_when_strict():
    with pytest.warns(UserWarning, match="'bn1' has width 32"):
        model = insert_tsb(get_model("lenet3"), k=64)
    assert _sites(model) == ["bn2"]
    assert model.tsb_skipped_sites == [{"name": "bn1", "width": 32, "reason": "width not a multiple of k=64"}]
    with pytest.raises(ConfigError, match=r"'bn1' has width 32.*valid power-of-two k: \[1, 2, 4, 8, 16, 32\]"):
        insert_tsb(get_model("lenet3"), k=64, strict=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(where="everywhere"), "where='everywhere' is unknown"),
    (dict(where=["nope"]), "'nope' is not a module"),
    (dict(k="big"), "k must be 'auto'"),
    (dict(budget=0), "budget"),
    (dict(input_shape=(3, 32, 32)), "dry-run forward"),
])
def test_insert_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        insert_tsb(get_model("lenet3"), **kwargs)


def test_insert_twice_and_sequential_roots_are_errors():
    model = insert_tsb(get_model("lenet3"))
    with pytest.raises(ConfigError, match="already has a TSB"):
        insert_tsb(model)
    with pytest.raises(ConfigError, match="wrap it"):
        insert_tsb(nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8)), input_shape=(1, 8, 8))
    with pytest.raises(TSBError, match="insert_tsb"):
        get_tsb(get_model("lenet3"))


def test_block_registered_once_and_sites_rebind_after_deepcopy():
    torch.manual_seed(0)
    model = insert_tsb(get_model("vgg8", width=0.125).eval())
    names = [n for n, m in model.named_modules() if m is model.tsb]
    assert names == ["tsb"]  # the sites hold it unregistered (an alias would stay digital in AIHWKit)
    assert [k for k in model.state_dict() if "tsb" in k] == ["tsb.conv.weight"]
    assert all(isinstance(s, TSBSite) and not list(s.parameters()) for s in model.tsb_sites.values())

    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.tsb.conv.weight.normal_(0, 0.1)
    x = torch.randn(2, 3, 32, 32)
    assert not torch.equal(twin(x), model(x))  # the copy's sites call the copy's block
    assert all(s.block is twin.tsb for s in twin.tsb_sites.values())
    before = twin(x)
    bind_sites(twin)
    bind_sites(twin)  # idempotent: still one hook per site
    assert torch.equal(twin(x), before)
    hooks = sum(len(m._forward_hooks) for m in twin.modules())
    assert hooks == len(twin.tsb_sites)


@pytest.mark.parametrize("builder, k", [
    (lambda: torchvision.models.resnet18(weights=None, num_classes=10), 64),
    (lambda: torchvision.models.vgg11_bn(weights=None, num_classes=10), 64),
    (lambda: torchvision.models.mobilenet_v2(weights=None, num_classes=10), 8),
])
def test_torchvision_cnns_without_weights(builder, k):
    torch.manual_seed(0)
    model = builder().eval()
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    insert_tsb(model, input_shape=(3, 32, 32))
    widths = {s.width for s in model.tsb_sites.values()}
    assert model.tsb_config["k"] == k == min(w & -w for w in widths)  # the budget does not bind here
    assert not model.tsb_skipped_sites
    assert torch.equal(model(x), before)
    with torch.no_grad():
        model.tsb.conv.weight.normal_(0, 0.1)
    assert not torch.equal(model(x), before)


def test_mobilenet_v2_widths_and_stage_sites():
    model = insert_tsb(torchvision.models.mobilenet_v2(weights=None), where="stage", input_shape=(3, 64, 64))
    assert [s.target for s in model.tsb_sites.values()] == [
        "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.14.conv.0", "features"]
    assert [s.width for s in model.tsb_sites.values()] == [96, 144, 192, 576, 1280]
    assert model.tsb_config["k"] == 16  # conv sites include width 24, so where="conv" gets k=8
