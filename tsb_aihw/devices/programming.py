"""Per-tile verify masks, programming statistics and the programming cost of a whole analog model."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from torch import Tensor, nn

from tsb_aihw.devices.noise.write_verify import WriteVerifyNoiseModel
from tsb_aihw.devices.presets import DevicePreset
from tsb_aihw.devices.schema import WriteVerifySpec
from tsb_aihw.errors import TSBError
from tsb_aihw.utils.io import JsonObject


def _wv_model(tile: Any) -> WriteVerifyNoiseModel:
    model = getattr(getattr(tile, "rpu_config", None), "noise_model", None)
    if not isinstance(model, WriteVerifyNoiseModel):
        raise TSBError(f"{type(tile).__name__} has noise model {type(model).__name__}, not a write-verify model; "
                       f"build the layer with DevicePreset.rpu_config(...) (tsb_aihw.devices.load_preset)")
    return model


def set_verify_mask(tile: Any, mask: Optional[Tensor]) -> None:
    """Write-verify exactly the cells where ``mask`` is True at the tile's next programming.

    ``mask`` is a bool tensor of the tile's weight-matrix shape ``[out, in]`` (for convs ``in`` is
    ``in_channels * kh * kw``, the order of ``tile.get_weights()``); ``None`` restores the config default
    (all cells for ``rpu_config(verified=True)``, none otherwise).
    """
    model = _wv_model(tile)
    if mask is None:
        model.verify_mask = None
        return
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise TSBError(f"verify mask must be a bool tensor, got dtype {mask.dtype}; pass mask.bool() or a "
                       f"comparison such as weights.abs() > threshold")
    shape = (int(tile.out_size), int(tile.in_size))
    if tuple(mask.shape) != shape:
        raise TSBError(f"verify mask has shape {tuple(mask.shape)} but the tile's weight matrix is {shape} "
                       f"[out, in]; slice the layer mask per tile (see tile arrays) or reshape it")
    model.verify_mask = mask.detach().to("cpu").clone()


def get_verify_mask(tile: Any) -> Optional[Tensor]:
    """The tile's explicit verify mask, or None when it follows the config default."""
    mask = _wv_model(tile).verify_mask
    return None if mask is None else mask.clone()


def tile_programming_stats(tile: Any) -> dict[str, int]:
    """Counts of the tile's last programming: cells, devices, verified_cells, pulses, reads, failed_cells.

    ``pulses`` and ``reads`` are device operations (a weight on 4 devices programmed once is 4 pulses);
    ``failed_cells`` are verified cells with a device still out of tolerance after ``max_iterations``.
    """
    model = _wv_model(tile)
    if model.last_stats is None:
        raise TSBError(f"{type(tile).__name__} has not been programmed yet; call "
                       f"model.program_analog_weights() (or tile.program_weights()) first")
    return dict(model.last_stats)


def iter_inference_tiles(model: nn.Module) -> Iterator[nn.Module]:
    """Every AIHWKit inference tile in ``model``, each once (shared modules are one tile)."""
    from aihwkit.simulator.tiles.inference import InferenceTileWithPeriphery

    for module in model.modules():
        if isinstance(module, InferenceTileWithPeriphery):
            yield module


@dataclass
class ProgrammingCost:
    """What programming one chip cost: device operations and a serial time/energy estimate."""

    cells: int = 0
    devices: int = 0
    verified_cells: int = 0
    pulses: int = 0
    reads: int = 0
    failed_cells: int = 0
    time_s: float = 0.0
    energy_j: float = 0.0
    tiles: int = 0

    def to_dict(self) -> JsonObject:
        return dataclasses.asdict(self)


def programming_cost(analog_model: nn.Module, preset: Optional[DevicePreset] = None) -> ProgrammingCost:
    """Sum the last programming of every tile and price it with the preset's per-device costs.

    time = pulses * t_pulse + reads * t_read and energy = pulses * e_pulse + reads * e_read, counted per device
    and serially (a real array programs many devices in parallel: compare strategies by ratio). With
    ``preset=None`` each tile is priced with the write-verify spec its own config was built with.
    """
    cost = ProgrammingCost()
    for tile in iter_inference_tiles(analog_model):
        stats = tile_programming_stats(tile)
        spec: WriteVerifySpec = preset.write_verify if preset is not None else _wv_model(tile).spec
        for key in ("cells", "devices", "verified_cells", "pulses", "reads", "failed_cells"):
            setattr(cost, key, getattr(cost, key) + stats[key])
        cost.time_s += stats["pulses"] * spec.t_pulse + stats["reads"] * spec.t_read
        cost.energy_j += stats["pulses"] * spec.e_pulse + stats["reads"] * spec.e_read
        cost.tiles += 1
    if cost.tiles == 0:
        raise TSBError(f"{type(analog_model).__name__} has no AIHWKit inference tiles; convert it to analog first "
                       f"(tsb_aihw.analog.to_analog or aihwkit convert_to_analog with a preset's rpu_config)")
    return cost
