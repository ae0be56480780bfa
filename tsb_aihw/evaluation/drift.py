"""Issue 6 public API: accuracy of a model on simulated chips over drift time, in one call."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.monte_carlo import MonteCarloResult, PerChip, monte_carlo
from tsb_aihw.evaluation.times import DRIFT_TIMES, parse_times


def as_loader(data: DataLoader | Dataset, batch_size: int = 256) -> DataLoader:
    """A DataLoader as given, or an unshuffled one over a Dataset."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DataLoader(data, batch_size=batch_size, shuffle=False)
    raise ConfigError(f"data must be a DataLoader or a Dataset, got {type(data).__name__}")


def is_analog_model(model: nn.Module) -> bool:
    return hasattr(model, "program_analog_weights") and hasattr(model, "drift_analog_weights")


def evaluate_drift(
    model: nn.Module,
    data: DataLoader | Dataset,
    preset: Any = None,
    times: Sequence[float | str] | str = DRIFT_TIMES,
    chips: int = 10,
    seed: int = 0,
    *,
    verify: Any = "tsb",
    per_chip: PerChip | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    out: str | Path | None = None,
    progress: bool = True,
    fast: bool | None = None,
) -> MonteCarloResult:
    """Monte-Carlo accuracy over ``chips`` chips at each drift time (seconds or "1h", "1d", "1y", ...).

    A digital ``model`` is converted with ``tsb_aihw.analog.to_analog(model, preset, verify=verify)``
    (``preset``: a ``DevicePreset`` or a preset name); an analog model is used as it is and ``preset`` is
    ignored. ``out`` (a directory) makes the study resumable. See :func:`monte_carlo` for the chip and t = 0
    conventions: chip ``i`` is the same chip as in ``tsb-aihw run`` for the same model, preset and seed.
    """
    seconds = parse_times(times)
    if not seconds:
        raise ConfigError("no drift times given; pass e.g. times=['0', '1h', '1d', '1y']")
    if not isinstance(chips, int) or isinstance(chips, bool) or chips < 1:
        raise ConfigError(f"chips must be a positive integer, got {chips!r}")
    loader = as_loader(data, batch_size)
    if not is_analog_model(model):
        if preset is None:
            raise ConfigError("a digital model needs a device preset to be put on a chip; pass "
                              "preset='<name>' (see `tsb-aihw presets`) or an analog model")
        from tsb_aihw.analog import to_analog  # lazy: the analog package pulls in AIHWKit

        if isinstance(preset, (str, Path)):
            from tsb_aihw.devices import load_preset

            preset = load_preset(preset)
        model = to_analog(model.eval(), preset, verify=verify)
    return monte_carlo(model.eval(), loader, chips=chips, times=seconds, seed=seed, preset=preset,
                       per_chip=per_chip, progress=progress, out=out, device=device, fast=fast)
