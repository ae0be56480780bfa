"""Shared builders for the tests: the digits data, tiny digits CNNs, a toy shared block and noisy chips.

Plain functions (pytest puts ``tests/`` on ``sys.path``, so test modules ``from helpers import ...``).
Everything here is deterministic for its arguments; model builders draw their initial weights from torch's
global RNG, so seed it first (``torch.manual_seed``) as the tests do.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tsb_aihw.training import train_noise_injection

SIGMA_STD = 0.7776  # docs/notes/tsb-method.md section 3: std = 0.7776 * sigma * max|W|


def digits(*cuts: int, seed: int = 0) -> tuple[TensorDataset, ...]:
    """sklearn's 8x8 digits as [N, 1, 8, 8] in [0, 1], shuffled with ``seed`` and split at ``cuts``.

    ``digits(1400)`` is (train, test); ``digits(1200, 1500)`` is (train, val, test).
    """
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    bounds = (0, *cuts, None)
    return tuple(TensorDataset(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))


def digits_features(*widths: int) -> nn.Sequential:
    """Conv3x3 (no bias) - BatchNorm - ReLU per width, then a 2x2 max-pool: [N, 1, 8, 8] -> [N, widths[-1], 4, 4]."""
    layers: list[nn.Module] = []
    channels = 1
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    return nn.Sequential(*layers, nn.MaxPool2d(2))


def digits_cnn(*widths: int) -> nn.Sequential:
    """``digits_features(*widths)`` + Flatten + Linear(widths[-1] * 16, 10), as one flat nn.Sequential."""
    return nn.Sequential(*digits_features(*widths), nn.Flatten(), nn.Linear(widths[-1] * 16, 10))


class ToyTSB(nn.Module):
    """Stand-in for the TinySharedBlock: residual, zero-initialised 1x1 conv (an identity until trained)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(k, k, 1, bias=False)
        nn.init.zeros_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def noisy_copy(model: nn.Module, sigma: float, seed: int) -> nn.Module:
    """One chip in plain torch: a deep copy with every Conv/Linear weight + N(0, (0.7776 sigma max|W|)^2)."""
    chip = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in chip.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = SIGMA_STD * sigma * m.weight.abs().max()
                m.weight += torch.randn(m.weight.shape, generator=gen) * std
    return chip


def clean_trained(build: Callable[[], nn.Module], train: Dataset, *, epochs: int, **kwargs: Any) -> nn.Module:
    """``build()`` under ``torch.manual_seed(0)``, trained without weight noise on ``train`` (batches of 64,
    shuffled, no progress bar); ``kwargs`` go to ``train_noise_injection`` (e.g. ``lr``)."""
    torch.manual_seed(0)
    model = build()
    train_noise_injection(model, DataLoader(train, 64, shuffle=True), noise_std=0.0, epochs=epochs, progress=False,
                          **kwargs)
    return model


def tiny_study(**overrides: Any) -> dict[str, Any]:
    """The smallest study config that runs the whole pipeline (lenet3 at half width on digits, 2 chips, 1-2
    epochs), as the dict ``study_config_from_dict`` takes; keyword arguments replace top-level keys."""
    base: dict[str, Any] = {
        "preset": "nvcim-gaussian", "chips": 2, "seed": 3, "times": [0],
        "model": {"name": "lenet3", "width": 0.5},
        "data": {"name": "digits", "batch_size": 64, "eval_batch_size": 256},
        "backbone": {"full_epochs": 2, "early_epochs": 1},
        "block": {"epochs": 1},
        "methods": ["full_noise_injection", "tsb"],
    }
    return base | copy.deepcopy(overrides)


def program_chip(model: nn.Module, index: int, seed: int = 0) -> Any:
    """Program an analog model as chip ``index`` of a study seeded ``seed`` (the one chip model)."""
    from tsb_aihw.analog.chip import Chip

    chip = Chip(model, None, seed, index)
    chip.program()
    return chip
