"""SWIM-style selective write-verify masks: exact counts, determinism, and that curvature beats chance."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsb_aihw.baselines import selection_masks
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy

from helpers import SIGMA_STD, ToyTSB, clean_trained, digits, digits_features

SIGMA = 0.5
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = digits_features(8, 16)
        self.tsb = ToyTSB(16)
        self.fc = nn.Linear(16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.tsb(self.features(x)), 1))


BACKBONE = {"features.0": 72, "features.3": 1152, "fc": 2560}


@pytest.fixture(scope="module")
def trained():
    train, test = digits(1400)
    model = clean_trained(Net, train, epochs=10)
    return model, DataLoader(train, 64), DataLoader(test, 512)


def accuracy_under_noise(model: Net, masks: dict[str, torch.Tensor] | None, test, draws: int = 12) -> float:
    """Plain-torch chips: unselected backbone weights + N(0, (0.7776 sigma max|W|)^2), selected ones exact."""
    accs = []
    gen = torch.Generator().manual_seed(1234)  # the same chips for every method: a paired comparison
    for _ in range(draws):
        chip = copy.deepcopy(model)
        layers = dict(chip.named_modules())
        with torch.no_grad():
            for name in BACKBONE:
                w = layers[name].weight
                noise = torch.randn(w.shape, generator=gen) * SIGMA_STD * SIGMA * w.abs().max()
                if masks is not None:
                    noise[masks[name]] = 0.0
                w += noise
        accs.append(evaluate_accuracy(chip, test))
    return sum(accs) / len(accs)


@pytest.mark.parametrize("method", ["random", "magnitude", "second_derivative"])
@pytest.mark.parametrize("fraction", [0.0, 0.013, 0.1, 1.0])
def test_exact_global_count_keys_shapes_and_no_tsb(trained, method, fraction):
    model, calib, _ = trained
    masks = selection_masks(model, calib, fraction, method, seed=0, batches=2)
    assert set(masks) == set(BACKBONE)  # the shared block is never selected
    for name, size in BACKBONE.items():
        mask = masks[name]
        assert mask.dtype == torch.bool and mask.shape == dict(model.named_modules())[name].weight.shape
        assert mask.numel() == size
    assert sum(int(m.sum()) for m in masks.values()) == round(fraction * sum(BACKBONE.values()))


def test_block_held_by_an_insertion_site_is_still_excluded(trained):
    model, calib, _ = trained
    aliased = copy.deepcopy(model)
    site = nn.Module()
    site.block = aliased.tsb  # an insertion site listed before "tsb" holds the block
    aliased._modules = {"site": site, **aliased._modules}
    assert "site.block.conv" in dict(aliased.named_modules())  # the block's first (dedup) name is not tsb.*
    masks = selection_masks(aliased, calib, 0.1, "second_derivative", batches=1)
    assert set(masks) == set(BACKBONE)


@pytest.mark.parametrize("method", ["random", "magnitude", "second_derivative"])
def test_deterministic_for_a_seed(trained, method):
    model, calib, _ = trained
    a = selection_masks(model, calib, 0.05, method, seed=3, batches=2)
    b = selection_masks(model, calib, 0.05, method, seed=3, batches=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    if method == "random":
        c = selection_masks(model, calib, 0.05, method, seed=4)
        assert any(not torch.equal(a[k], c[k]) for k in a)


def test_magnitude_picks_the_largest_weights_globally(trained):
    model, calib, _ = trained
    masks = selection_masks(model, calib, 0.1, "magnitude")
    layers = dict(model.named_modules())
    chosen = torch.cat([layers[n].weight.detach().abs()[masks[n]] for n in BACKBONE])
    rest = torch.cat([layers[n].weight.detach().abs()[~masks[n]] for n in BACKBONE])
    assert chosen.min() >= rest.max()


def test_fisher_kinds_are_both_live(trained):
    model, calib, _ = trained
    sampled = selection_masks(model, calib, 0.05, "second_derivative", batches=2, fisher="model")
    empirical = selection_masks(model, calib, 0.05, "second_derivative", batches=2, fisher="empirical")
    assert sum(int(m.sum()) for m in empirical.values()) == sum(int(m.sum()) for m in sampled.values())
    assert any(not torch.equal(sampled[k], empirical[k]) for k in sampled)
    with pytest.raises(ConfigError, match="unknown fisher"):
        selection_masks(model, calib, 0.05, "second_derivative", fisher="hutchinson")


def test_second_derivative_beats_random_under_noise(trained):
    """SWIM's claim on a tiny model: at the same verify budget, curvature-ranked weights recover far more."""
    model, calib, test = trained
    none = accuracy_under_noise(model, None, test)
    for fraction in (0.05, 0.1):
        random = accuracy_under_noise(model, selection_masks(model, calib, fraction, "random", seed=0), test)
        second = accuracy_under_noise(
            model, selection_masks(model, calib, fraction, "second_derivative", seed=0, batches=4), test)
        assert second > random + 0.1, (fraction, none, random, second)
        assert second > none + 0.15


def test_bad_arguments(trained):
    model, calib, _ = trained
    with pytest.raises(ConfigError, match="fraction"):
        selection_masks(model, calib, 1.5, "random")
    with pytest.raises(ConfigError, match="unknown selection method"):
        selection_masks(model, calib, 0.1, "saliency")
    with pytest.raises(ConfigError, match="noise_scale"):
        selection_masks(model, calib, 0.1, "second_derivative", noise_scale="bits")
    with pytest.raises(ConfigError, match="data loader"):
        selection_masks(model, None, 0.1, "second_derivative")
