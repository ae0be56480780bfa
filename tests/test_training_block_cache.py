"""Cached block training (tsb_aihw.training.block_cache) must train the same block as uncached training."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from tsb_aihw.errors import ConfigError
from tsb_aihw.models import insert_tsb
from tsb_aihw.training import train_block
from tsb_aihw.training.block_cache import build_block_cache, first_site

from helpers import digits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Net(nn.Module):
    """conv-BN-ReLU x 2, pool, FC on 8x8 digits; every op a named module (sites after bn1 and bn2)."""

    def __init__(self, shared_pre: bool = False) -> None:
        super().__init__()
        self.input_size = 8
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pre = nn.Identity()  # shared_pre: also called after the first site (a reused module)
        self.shared_pre = shared_pre
        self.pool, self.flatten, self.fc = nn.MaxPool2d(2), nn.Flatten(1), nn.Linear(8 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(self.pre(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        if self.shared_pre:
            x = self.pre(x)
        return self.fc(self.flatten(self.pool(x)))


def model_with_tsb(shared_pre: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = Net(shared_pre)
    for bn in (net.bn1, net.bn2):  # non-trivial frozen BN statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return insert_tsb(net.eval(), k=4, where="conv")


@pytest.fixture(scope="module")
def data():
    train, test = digits(1400)
    return train, DataLoader(test, 256)


def test_cached_training_equals_uncached(data):
    train, val = data
    model = model_with_tsb()
    uncached = copy.deepcopy(model)
    cache = build_block_cache(model, train, images=300, seed=3, batch_size=128)
    assert first_site(model) == cache.site == "bn1" and len(cache) == 300
    assert cache.activations.shape == (300, 8, 8, 8)
    assert set(cache.stubbed) == {"pre", "conv1", "bn1"}
    kw = dict(block_params="tsb", epochs=3, lr=1e-2, seed=5, progress=False, val_loader=val)
    res_c = train_block(model, cache.loader(32), cache=cache, **kw)
    loader = DataLoader(Subset(train, cache.indices.tolist()), 32, shuffle=True, generator=torch.Generator())
    res_u = train_block(uncached, loader, **kw)
    w_c, w_u = model.tsb.state_dict(), uncached.tsb.state_dict()
    init = model_with_tsb().tsb.state_dict()
    for k in w_u:
        torch.testing.assert_close(w_c[k], w_u[k], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(w_u[k], init[k]) for k in w_u)  # the block did train
    for h_c, h_u in zip(res_c.history, res_u.history):
        assert h_c["train_loss"] == pytest.approx(h_u["train_loss"], rel=1e-4)
        assert h_c["val_acc"] == h_u["val_acc"]  # validation runs the real forward on real images
    for k, v in uncached.state_dict().items():  # the backbones stayed identical (and unstubbed)
        if not k.startswith("tsb."):
            assert torch.equal(v, model.state_dict()[k]), k
    assert "forward" not in model.conv1.__dict__ and "forward" not in model.bn1.__dict__


def test_replay_skips_the_prefix(data):
    train, _ = data
    model = model_with_tsb()
    cache = build_block_cache(model, train, images=64)
    calls = []
    model.conv1.register_forward_pre_hook(lambda m, i: calls.append(i[0].shape))
    batch = cache.activations[:16].clone()
    with torch.no_grad():
        out = cache.forward(model, batch)
        ref = model(torch.stack([train[i][0] for i in cache.indices[:16].tolist()]))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert len(calls) == 2 and calls[0] == calls[1]  # hooks fire, but conv1 got the placeholder, not its work


def test_module_shared_across_the_first_site_is_refused(data):
    train, _ = data
    with pytest.raises(ConfigError, match="before and after the first TSB site"):
        build_block_cache(model_with_tsb(shared_pre=True), train, images=32)


def test_cache_refuses_backbone_noise_and_bad_sizes(data):
    train, _ = data
    model = model_with_tsb()
    cache = build_block_cache(model, train, images=32)
    with pytest.raises(ConfigError, match="cannot be cached"):
        train_block(model, cache.loader(16), epochs=1, progress=False, cache=cache, backbone_noise_std=0.1)
    with pytest.raises(ConfigError, match="images="):
        build_block_cache(model, train, images=0)
