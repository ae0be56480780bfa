"""Block training: only the block moves (backbone bit-identical, BN stats included) and it repairs a chip."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.training import train_block

from helpers import SIGMA_STD, ToyTSB, clean_trained, digits, noisy_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8 * 16, 10)
        self.tsb: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.b1(self.c1(x)))
        if self.tsb is not None:
            x = self.tsb(x)
        x = torch.relu(self.b2(self.c2(x)))
        if self.tsb is not None:
            x = self.tsb(x)
        return self.fc(self.drop(torch.flatten(nn.functional.max_pool2d(x, 2), 1)))


def chip_twin(model: Net, sigma: float, seed: int) -> Net:
    """A digital twin holding one chip's weights (backbone Conv/Linear + chip noise) and a fresh ToyTSB(8)."""
    twin = noisy_copy(model, sigma, seed)
    twin.tsb = ToyTSB(8)
    return twin


@pytest.fixture(scope="module")
def setup():
    train, test = digits(1400)
    backbone = clean_trained(Net, train, epochs=12, lr=3e-3)
    return backbone, DataLoader(train, 64, shuffle=True), DataLoader(test, 512)


def test_backbone_bit_identical_and_flags_restored(setup):
    backbone, train, _ = setup
    twin = chip_twin(backbone, 0.4, seed=0)
    twin.c2.weight.requires_grad_(False)  # a caller's own freezing must survive
    before = {k: v.clone() for k, v in twin.state_dict().items()}
    flags = {k: p.requires_grad for k, p in twin.named_parameters()}
    twin.train()  # BN must stay frozen even if the caller left the model in train mode
    result = train_block(twin, train, block_params="tsb", epochs=2, lr=1e-2, progress=False)
    after = twin.state_dict()
    for k, v in before.items():
        if k.startswith("tsb."):
            continue
        assert torch.equal(v, after[k]), k  # weights, BN running stats and num_batches_tracked
    assert not torch.equal(before["tsb.conv.weight"], after["tsb.conv.weight"])
    assert {k: p.requires_grad for k, p in twin.named_parameters()} == flags
    assert result.trainable_params == 64 and result.method == "block" and result.epochs_run == 2
    assert result.wall_time_s > 0 and len(result.history) == 2


def test_block_training_repairs_a_noisy_chip(setup):
    backbone, train, test = setup
    clean = evaluate_accuracy(backbone, test)
    gains = []
    for seed in range(2):
        twin = chip_twin(backbone, 0.4, seed)
        before = evaluate_accuracy(twin, test)
        train_block(twin, train, block_params=twin.tsb, epochs=8, lr=1e-2, seed=seed, progress=False)
        after = evaluate_accuracy(twin, test)
        gains.append(after - before)
        assert before < clean - 0.15  # the chip really is damaged ...
        assert after > before + 0.2  # ... and 64 shared weights recover most of it
    assert min(gains) > 0.2


def test_block_as_parameters_and_validation(setup):
    backbone, train, test = setup
    twin = chip_twin(backbone, 0.4, seed=3)
    result = train_block(twin, train, block_params=list(twin.tsb.parameters()), epochs=3, lr=1e-2,
                         val_loader=test, progress=False)
    assert result.best_val_acc == max(h["val_acc"] for h in result.history)
    assert evaluate_accuracy(twin, test) == result.best_val_acc


def test_noise_on_block_only_during_training(setup):
    backbone, train, test = setup
    twin = chip_twin(backbone, 0.4, seed=1)
    before = {k: v.clone() for k, v in twin.state_dict().items() if not k.startswith("tsb.")}
    result = train_block(twin, train, epochs=2, lr=1e-2, noise_std=0.05, progress=False)
    assert result.config.noise_std == 0.05
    assert not parametrize.is_parametrized(twin.tsb.conv)
    assert all(torch.equal(v, twin.state_dict()[k]) for k, v in before.items())
    assert list(twin.state_dict()) == list(before) + ["tsb.conv.weight"]


def test_generic_block_on_fresh_backbone_noise(setup):
    """The "generic" control: noise redrawn on the frozen backbone at every step, backbone untouched."""
    backbone, train, test = setup
    generic = copy.deepcopy(backbone)
    generic.tsb = ToyTSB(8)
    before = {k: v.clone() for k, v in generic.state_dict().items() if not k.startswith("tsb.")}
    train_block(generic, train, epochs=8, lr=1e-2, backbone_noise_std=SIGMA_STD * 0.4, progress=False)
    assert all(torch.equal(v, generic.state_dict()[k]) for k, v in before.items())
    assert not any(parametrize.is_parametrized(m) for m in generic.modules())
    quiet = copy.deepcopy(backbone)
    quiet.tsb = ToyTSB(8)
    train_block(quiet, train, epochs=1, lr=1e-2, progress=False)
    first = copy.deepcopy(backbone)
    first.tsb = ToyTSB(8)
    train_block(first, train, epochs=1, lr=1e-2, backbone_noise_std=SIGMA_STD * 0.4, progress=False)
    assert not torch.equal(first.tsb.conv.weight, quiet.tsb.conv.weight)  # the noise was really on
    without, with_block = [], []
    for seed in range(10, 14):  # unseen chips
        twin = chip_twin(backbone, 0.4, seed)
        without.append(evaluate_accuracy(twin, test))
        twin.tsb = generic.tsb
        with_block.append(evaluate_accuracy(twin, test))
    assert sum(with_block) / 4 > sum(without) / 4 + 0.05, (without, with_block)


def test_same_seed_same_block(setup):
    backbone, train, _ = setup
    weights = []
    for _ in range(2):
        twin = chip_twin(backbone, 0.4, seed=2)
        train_block(twin, train, epochs=1, lr=1e-2, seed=5, progress=False)
        weights.append(twin.tsb.conv.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_block_errors(setup):
    backbone, train, _ = setup
    with pytest.raises(ConfigError, match="no submodule"):
        train_block(copy.deepcopy(backbone), train, block_params="tsb", epochs=1, progress=False)
    other = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="not part of the model"):
        train_block(chip_twin(backbone, 0.1, 0), train, block_params=other, epochs=1, progress=False)
