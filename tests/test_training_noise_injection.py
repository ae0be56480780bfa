"""Noise-injection training: the noise itself, its removal, early stopping and the robustness it buys."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.training import EarlyStop, WeightNoise, add_weight_noise, train_noise_injection, weight_noise
from tsb_aihw.training.noise_injection import cached_forward

from helpers import SIGMA_STD, digits, digits_cnn, noisy_copy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_cnn() -> nn.Module:
    return digits_cnn(8, 8)


@pytest.fixture(scope="module")
def data():
    train, val, test = digits(1200, 1500)
    return DataLoader(train, 64, shuffle=True), DataLoader(val, 300), DataLoader(test, 512)


def test_noise_has_the_requested_std_only_in_train_mode():
    lin = nn.Linear(64, 64, bias=True)
    clean_w, clean_b = lin.weight.detach().clone(), lin.bias.detach().clone()
    with weight_noise(lin, 0.2):
        lin.train()
        draws = torch.stack([lin.weight.detach() - clean_w for _ in range(50)])
        assert not torch.equal(draws[0], draws[1])  # fresh draw every evaluation
        std = draws.std().item()
        assert std == pytest.approx(0.2 * clean_w.abs().max().item(), rel=0.03)
        assert torch.equal(lin.bias, clean_b)  # biases stay clean
        lin.eval()
        assert torch.equal(lin.weight, clean_w)  # no noise in eval mode
    assert not parametrize.is_parametrized(lin)
    assert torch.equal(lin.weight, clean_w)


def test_gradient_is_straight_through_to_the_clean_weight():
    lin = nn.Linear(5, 3, bias=False)
    coeff = torch.randn(3, 5)
    with weight_noise(lin, 0.5):
        lin.train()
        loss = (lin.weight * coeff).sum()  # d loss / d W_noisy = coeff; max|W| must not add a term
        loss.backward()
    assert torch.allclose(lin.weight.grad, coeff)


def test_shared_module_sees_one_draw_per_forward():
    shared = nn.Linear(4, 4, bias=False)

    class TwoSites(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = shared

        def forward(self, x):
            return torch.stack([self.block(x), self.block(x)])

    model = TwoSites()
    with weight_noise(model, 0.5):
        model.train()
        out = cached_forward(model, torch.randn(2, 4))
        assert torch.equal(out[0], out[1])
        assert not torch.equal(model(torch.ones(1, 4))[0], model(torch.ones(1, 4))[1])  # uncached: two draws


def test_noise_is_removed_and_parameters_are_the_same_objects(data):
    train, val, _ = data
    torch.manual_seed(0)
    model = small_cnn()
    keys = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    result = train_noise_injection(model, train, val, noise_std=0.2, epochs=1, progress=False)
    assert list(model.state_dict()) == keys
    assert [id(p) for p in model.parameters()] == params
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert not model.training
    d = result.to_dict()
    assert d["method"] == "noise_injection" and d["epochs_run"] == 1 and d["wall_time_s"] > 0
    assert d["history"][0]["val_acc"] == result.best_val_acc
    assert d["config"]["noise_std"] == 0.2


def test_same_seed_same_weights(data):
    train, _, _ = data
    states = []
    for _ in range(2):
        torch.manual_seed(1)
        model = small_cnn()
        train_noise_injection(model, train, noise_std=0.3, epochs=1, seed=7, progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_early_stop_and_best_state_restored(data):
    train, val, _ = data
    torch.manual_seed(0)
    model = small_cnn()
    result = train_noise_injection(model, train, val, noise_std=0.1, epochs=30, lr=3e-3, progress=False,
                                   early_stop=EarlyStop(target=0.96, fraction=0.99))
    assert result.stopped_early and 1 < result.epochs_run < 30
    accs = [h["val_acc"] for h in result.history]
    assert accs[-1] >= 0.96 * 0.99 and max(accs[:-1]) < 0.96 * 0.99  # stopped at the first epoch reaching it
    assert evaluate_accuracy(model, val) == result.best_val_acc  # the best-val state is what we keep
    assert result.best_val_acc == max(h["val_acc"] for h in result.history)


def test_patience_rule():
    rule = EarlyStop(patience=2, min_delta=0.01)
    assert rule.reason([0.5, 0.6, 0.7]) is None
    assert rule.reason([0.5, 0.6, 0.605, 0.61]) is not None  # +0.01 over the best before is not enough
    assert rule.reason([0.5, 0.6, 0.605, 0.62]) is None
    with pytest.raises(ConfigError):
        EarlyStop()
    with pytest.raises(ConfigError):
        EarlyStop(patience=0)


def test_bad_arguments_are_config_errors(data):
    train, _, _ = data
    with pytest.raises(ConfigError, match="epochs"):
        train_noise_injection(small_cnn(), train, noise_std=0.1, epochs=0, progress=False)
    with pytest.raises(ConfigError, match="optimizer"):
        train_noise_injection(small_cnn(), train, noise_std=0.1, epochs=1, optimizer="lbfgs", progress=False)
    with pytest.raises(ConfigError, match="val_loader"):
        train_noise_injection(small_cnn(), train, noise_std=0.1, epochs=1, early_stop=EarlyStop(patience=1),
                              progress=False)
    with pytest.raises(ConfigError, match="noise_std"):
        add_weight_noise(small_cnn(), -0.1)
    lin = nn.Linear(2, 2)
    parametrize.register_parametrization(lin, "weight", WeightNoise(0.1))
    with pytest.raises(ConfigError, match="already parametrized"):
        add_weight_noise(lin, 0.1)


def test_noise_injection_makes_the_model_robust_to_weight_noise(data):
    """The reason to do it: under sigma=0.3 chip noise the noise-trained model keeps far more accuracy."""
    train, _, test = data
    noisy_acc = {}
    for std in (0.0, SIGMA_STD * 0.3):
        torch.manual_seed(0)
        model = small_cnn()
        train_noise_injection(model, train, noise_std=std, epochs=12, lr=3e-3, progress=False)
        accs = [evaluate_accuracy(noisy_copy(model, 0.3, seed), test) for seed in range(8)]
        noisy_acc[std] = sum(accs) / len(accs)
    plain, robust = noisy_acc[0.0], noisy_acc[SIGMA_STD * 0.3]
    assert robust > plain + 0.1, noisy_acc
