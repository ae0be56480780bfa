"""Per-chip batch-norm recalibration: re-estimate BN running statistics through the chip's weights.

A cheap, digital baseline (docs/notes/tsb-method.md section 8): the noisy analog layers shift the activation
statistics, and re-measuring mean/var on a few unlabelled batches undoes part of the damage. Only BN
buffers change. Only the BN modules are switched to train mode, so AIHWKit layers stay in eval mode and
forward through the programmed (drift-compensated) tiles exactly as at inference, on the same forward as
the chip's accuracy (``fast``: :func:`tsb_aihw.analog.fast_eval.chip_forward`: the fast path's native kernels,
not AIHWKit's elementwise passes; cost measured in docs/performance.md).
"""
from __future__ import annotations

from contextlib import ExitStack
from typing import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.accuracy import has_analog_layers, model_device
from tsb_aihw.utils.device import resolve_device


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable, batches: int | None = None,
                   device: str | torch.device = "cpu", fast: bool | str | None = None,
                   product: str | None = None) -> int:
    """Reset BN running stats and re-estimate them as a cumulative average over ``batches`` batches (all if
    None). Works on digital and AIHWKit analog models; returns the number of samples used. Training flags and
    BN momenta are restored afterwards. ``fast``: how analog layers forward, as in ``evaluate_accuracy``
    (None: the process's mode; 'off': AIHWKit's own forward), ``product`` its matrix product (None: the process's)."""
    bns = batchnorm_layers(model)
    if not bns:
        raise ConfigError("the model has no BatchNorm layers with running statistics; BN recalibration does "
                          "not apply to it (drop the bn-recalibration baseline for this model)")
    if batches is not None and batches < 1:
        raise ConfigError(f"batches must be >= 1 (or None for the whole loader), got {batches}")
    dev = resolve_device(device)
    if model_device(model) not in (None, dev):
        model.to(dev)
    flags = [(m, m.training) for m in model.modules()]
    momenta = [(bn, bn.momentum) for bn in bns]
    saved = [{k: v.clone() for k, v in bn._buffers.items() if v is not None} for bn in bns]
    seen = 0
    ok = False
    try:
        model.eval()
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average: every batch counts equally
            bn.train()
        with torch.no_grad(), ExitStack() as stack:  # statistics only: no autograd graph through the tiles
            if has_analog_layers(model):
                from tsb_aihw.analog.fast_eval import chip_forward  # lazy: pulls in AIHWKit

                stack.enter_context(chip_forward(model, fast, product))  # analog layers are in eval mode: fast path
            for i, batch in enumerate(loader):
                if batches is not None and i >= batches:
                    break
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                model(x.to(dev))
                seen += int(x.shape[0])
        ok = seen > 0
    finally:
        if not ok:  # failed or empty: leave the statistics as they were, not reset
            for bn, buffers in zip(bns, saved):
                for k, v in buffers.items():
                    bn._buffers[k].copy_(v)
        for bn, momentum in momenta:
            bn.momentum = momentum
        for m, flag in flags:
            m.training = flag
    if seen == 0:
        raise ConfigError("the recalibration loader yielded no samples; check the dataset split and batch "
                          "size")
    return seen
