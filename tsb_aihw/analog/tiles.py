"""The tile grid of an analog layer, and what can be mapped to tiles at all.

AIHWKit maps a conv weight [out, in, kh, kw] to a tile matrix [out, in*kh*kw] (``weight.reshape(out, -1)``,
matching ``F.unfold``'s channel-major patch order). A layer bigger than the preset's
``max_input_size``/``max_output_size`` becomes a ``TileModuleArray`` whose ``array[i][j]`` holds rows
``out_sizes[j]`` x columns ``in_sizes[i]`` of that matrix; otherwise ``analog_module`` is the one tile.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # AIHWKit ships no type information: mypy reads these as Any
    from aihwkit.nn.modules.base import AnalogLayerBase
    from aihwkit.simulator.tiles.module import TileModule

_CONVERTIBLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # AIHWKit's default map, exact class match


class TileSlice(NamedTuple):
    tile: TileModule
    rows: slice  # output rows of the layer's [out, in] matrix
    cols: slice  # input columns


def tile_grid(layer: AnalogLayerBase) -> list[TileSlice]:
    """Every physical tile of an analog layer with the block of the layer matrix it holds."""
    mod = layer.analog_module
    if not hasattr(mod, "array"):
        return [TileSlice(mod, slice(0, mod.out_size), slice(0, mod.in_size))]
    out = []
    col = 0
    for in_size, in_tiles in zip(mod.in_sizes, mod.array):
        row = 0
        for out_size, tile in zip(mod.out_sizes, in_tiles):
            out.append(TileSlice(tile, slice(row, row + out_size), slice(col, col + in_size)))
            row += out_size
        col += in_size
    return out


def digital_shape(layer: AnalogLayerBase) -> tuple[int, ...]:
    """The digital ``weight`` shape of an analog layer (conv: [out, in, *kernel]; linear: [out, in])."""
    if hasattr(layer, "kernel_size"):
        return (layer.out_channels, layer.in_channels // layer.groups, *layer.kernel_size)
    return (layer.out_features, layer.in_features)


def not_convertible_reason(module: nn.Module) -> str | None:
    """Why AIHWKit's ``convert_to_analog`` cannot map this conv/linear to tiles (None = it can)."""
    if type(module) not in _CONVERTIBLE:
        return (f"{type(module).__name__} is not exactly one of AIHWKit's convertible classes "
                "(subclasses are skipped by convert_to_analog)")
    if getattr(module, "groups", 1) != 1:
        return f"grouped conv (groups={module.groups}): AIHWKit analog convs support groups=1 only"
    if getattr(module, "padding_mode", "zeros") != "zeros":
        return f"padding_mode={module.padding_mode!r}: AIHWKit analog convs support 'zeros' only"
    return None


def mask_to_matrix(mask: Tensor, out_features: int) -> Tensor:
    """A digital-shaped mask (conv [out, in, kh, kw]) as the tile-layout matrix [out, in*kh*kw]."""
    return mask.reshape(out_features, -1)


def tile_verify_mask(tile: TileModule) -> Tensor | None:
    """The cells this tile will write-verify, read from the tile (None if its noise model cannot say).

    ``get_verify_mask`` gives the explicit mask, or None when the tile follows its config default, which
    the write-verify noise model holds as ``default_verified`` (all cells or none).
    """
    from tsb_aihw.devices import get_verify_mask  # lazy: devices pulls in AIHWKit's noise models

    try:
        mask = get_verify_mask(tile)
    except Exception:  # noqa: BLE001 - not a write-verify tile (e.g. a hand-made rpu_config)
        return None
    if mask is not None:
        return mask
    default = getattr(getattr(tile.rpu_config, "noise_model", None), "default_verified", None)
    if default is None:
        return None
    return torch.full((int(tile.out_size), int(tile.in_size)), bool(default), dtype=torch.bool)


@torch.no_grad()
def reset_drift_compensation(tile: nn.Module) -> None:
    """Set a tile's drift-compensation factor to 1. AIHWKit's ``program_weights`` keeps the previous drift's
    alpha, but right after programming the programmed weights are the baseline (a fresh chip has no drift)."""
    alpha = getattr(tile, "alpha", None)
    if isinstance(alpha, torch.Tensor):
        tile.alpha = torch.ones((1,), dtype=alpha.dtype, device=alpha.device)
