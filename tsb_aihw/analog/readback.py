"""Read programmed weights back as the hardware would, and load them into a digital twin.

This is TSB's noise-data collection step (docs/notes/tsb-method.md §2): the backbone is programmed once, its device
values are read, and the block is then trained on a digital copy carrying exactly those values.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from tsb_aihw.analog.tiles import digital_shape, tile_grid
from tsb_aihw.errors import ConfigError


def _effective(tile: nn.Module) -> Tensor:
    """Tile weights as the eval forward uses them: raw conductance-mapped weights x digital scales x alpha."""
    weight = tile.tile.get_weights().detach().clone()
    scales = tile.get_scales()
    if scales is not None:
        weight = weight * scales.detach().cpu().view(-1, 1)
    if getattr(tile.rpu_config, "drift_compensation", None) is not None:
        weight = weight * torch.as_tensor(tile.alpha).detach().cpu().reshape(-1)[0]
    return weight


@torch.no_grad()
def _read_tile(tile: nn.Module, t: float | None, n_reads: int) -> Tensor:
    if t is None:
        return _effective(tile)
    if getattr(tile, "programmed_weights", None) is None:
        raise ConfigError("read_back needs programmed tiles; call analog_model.program_analog_weights() first")
    saved_w = tile.tile.get_weights().detach().clone()
    saved_alpha = tile.alpha  # drift_weights assigns a new tensor, so this reference keeps the old value
    total: Tensor | None = None
    try:
        for _ in range(n_reads):
            tile.drift_weights(t)  # fresh drift/read-noise draw at time t from the programmed state
            w = _effective(tile)
            total = w if total is None else total + w
    finally:
        tile.tile.set_weights(saved_w)
        tile.alpha = saved_alpha
    assert total is not None  # n_reads >= 1 (read_back checks)
    return total / n_reads


def read_back(analog_model: nn.Module, t: float | None = 0.0, n_reads: int = 1) -> dict[str, Tensor]:
    """Effective weights of every analog layer, keyed by layer name, in the digital weight shape.

    ``t`` = seconds after programming: each read draws the noise model's drift and read noise at ``t`` from
    the programmed state (the tiles' state is restored afterwards); ``n_reads`` reads are averaged, as a
    careful read-out would. ``t=None`` reads the tiles' current state exactly as the forward uses it (e.g.
    after ``drift_analog_weights``). Weights include the digital output scales and the drift-compensation
    alpha, and are stitched over the tile grid, so a digital twin loaded with them computes the analog
    model's MVMs up to the periphery (DAC/ADC, output noise).
    """
    if n_reads < 1:
        raise ConfigError(f"n_reads must be >= 1, got {n_reads}")
    if t is not None and t < 0:
        raise ConfigError(f"t is seconds after programming and must be >= 0 (or None), got {t}")
    if analog_model.training:
        raise ConfigError("read_back needs eval mode (drift compensation applies in eval only); call .eval()")
    out = {}
    for name, layer in analog_model.named_analog_layers():
        grid = tile_grid(layer)
        full = torch.zeros(layer.out_features, layer.in_features)
        for piece in grid:
            full[piece.rows, piece.cols] = _read_tile(piece.tile, t, n_reads)
        out[name] = full.reshape(digital_shape(layer))
    if not out:
        raise ConfigError("the model has no analog layers; convert it with tsb_aihw.analog.to_analog first")
    return out


@torch.no_grad()
def load_read_back(digital_model: nn.Module, weights: Mapping[str, Tensor]) -> nn.Module:
    """Copy read-back weights into the digital twin (same architecture, digital layers); returns it."""
    modules = dict(digital_model.named_modules())
    for name, w in weights.items():
        target = getattr(modules.get(name), "weight", None)
        if not isinstance(target, Tensor):
            raise ConfigError(
                f"read-back weight {name!r} has no digital layer with a weight in the twin; the twin must have "
                f"the analog model's architecture (e.g. a deepcopy of the digital model to_analog converted)"
            )
        if tuple(target.shape) != tuple(w.shape):
            raise ConfigError(f"read-back weight {name!r} has shape {tuple(w.shape)}, the twin's is "
                              f"{tuple(target.shape)}; use a twin of the same architecture and width")
        target.copy_(w.to(target.device, target.dtype))
    return digital_model
