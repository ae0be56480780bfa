"""Top-1 accuracy of any classifier (digital or AIHWKit analog) over a loader."""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Iterable, Iterator

import torch
from torch import nn

from tsb_aihw.errors import ConfigError, DataError
from tsb_aihw.utils.device import resolve_device

if TYPE_CHECKING:
    from tsb_aihw.analog.chip import Chip


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


def has_analog_layers(model: nn.Module) -> bool:
    """Whether any submodule is an AIHWKit module (checked by class, without importing AIHWKit)."""
    return any(type(m).__module__.startswith("aihwkit.") for m in model.modules())


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, loader: Iterable, device: str | torch.device = "cpu",
                      max_batches: int | None = None, fast: bool | str | None = None,
                      product: str | None = None) -> float:
    """Fraction of correctly classified samples; eval mode and ``no_grad`` (training flags restored).

    ``fast``: how AIHWKit analog layers are evaluated (:mod:`tsb_aihw.analog.fast_eval`): 'exact' (AIHWKit's
    numbers with native kernels), 'statistical' (the same model, own noise stream, fused) or 'off' (AIHWKit's
    forward); True/False = default fast mode/off. Layers the fast path does not support keep AIHWKit's
    forward, with a warning. None follows ``set_fast_eval`` / env ``TSB_AIHW_FAST_EVAL``; digital models
    are unaffected. ``product``: the statistical mode's matrix product, fp32 | bf16 | auto (None: ``set_fast_eval``'s).
    """
    dev = resolve_device(device)
    if model_device(model) not in (None, dev):
        model.to(dev)
    correct = total = 0
    with eval_mode(model), ExitStack() as stack:
        if has_analog_layers(model):
            from tsb_aihw.analog.fast_eval import chip_forward  # lazy: pulls in AIHWKit

            stack.enter_context(chip_forward(model, fast, product))
        for i, (x, y) in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = x.to(dev), y.to(dev)
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise DataError(f"evaluation batch {i} holds NaN/inf inputs; every image must be finite "
                                "(argmax of NaN logits would count as class 0): clean the dataset")
            pred = model(x).argmax(dim=1)
            correct += int((pred == y).sum())
            total += int(y.numel())
    if total == 0:
        raise ConfigError("the evaluation loader yielded no samples; check the dataset split and batch size")
    return correct / total


def chip_accuracy(chip: Chip, loader: Iterable, t: float, device: str | torch.device = "cpu",
                  fast: bool | str | None = None, product: str | None = None) -> float:
    """Accuracy of a programmed chip at chip time ``t`` (drifted first), its periphery's output noise seeded by
    the chip and the time: the one evaluation of a chip every command uses."""
    chip.drift(t)
    with chip.rng("eval", repr(float(t))):
        return evaluate_accuracy(chip.model, loader, device=device, fast=fast, product=product)
