"""Top-1 accuracy of any classifier (digital or AIHWKit analog) over a loader."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.device import resolve_device


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every module in eval mode and restore each module's own flag afterwards (not just the root's)."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def model_device(model: nn.Module) -> torch.device | None:
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return None


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader: Iterable, device: str | torch.device = "cpu",
                      max_batches: int | None = None) -> float:
    """Fraction of correctly classified samples; eval mode and ``no_grad`` (training flags restored)."""
    dev = resolve_device(device)
    if model_device(model) not in (None, dev):
        model.to(dev)
    correct = total = 0
    with eval_mode(model):
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(dev), y.to(dev)
            pred = model(x).argmax(dim=1)
            correct += int((pred == y).sum())
            total += int(y.numel())
    if total == 0:
        raise ConfigError("the evaluation loader yielded no samples; check the dataset split and batch size")
    return correct / total
