"""Simulated chips: seeded programming that lets every method share the same chip instances.

AIHWKit draws programming noise from torch's global generator, tile after tile. A write-verify loop draws
extra numbers for its re-programmed cells, so with one seed per chip the tiles after a verified tile would
see different noise for different methods. Seeding each tile from (chip seed, layer name, tile index)
makes a chip's one-shot noise identical across methods, whatever is verified elsewhere.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from tsb_aihw.analog.tiles import reset_drift_compensation
from tsb_aihw.utils.seeding import derive_seed


def _canonical(name: str) -> str:
    """Layer name without insertion-site wrappers, so a backbone layer is the same chip location with or
    without a TSB inserted."""
    return ".".join(p for p in name.split(".") if p not in {"wrapped", "inner", "module"})


def named_analog_tiles(model: nn.Module) -> Iterator[tuple[str, int, nn.Module, nn.Module]]:
    """(canonical layer name, tile index, layer, tile) for every analog tile, in module order."""
    for name, layer in model.named_analog_layers():
        for j, tile in enumerate(layer.analog_tiles()):
            yield _canonical(name), j, layer, tile


def program_chip(model: nn.Module, chip_seed: int, only: str | None = None, new_target: bool = False) -> None:
    """Program every analog tile (or those of the layers whose canonical name starts with ``only``) as one
    fresh chip.

    Tiles are programmed from their stored target (AIHWKit's reference, taken at the first programming), so
    drifted weights never become a target. After new target weights were written into a layer (a re-trained
    block), pass ``new_target=True`` so the tile takes them as its target (AIHWKit's stale-reference pitfall).
    """
    model.eval()
    state = torch.random.get_rng_state()
    try:
        for name, j, _layer, tile in named_analog_tiles(model):
            if only is not None and not name.startswith(only):
                continue
            torch.manual_seed(derive_seed(chip_seed, name, j))
            tile.program_weights(from_reference=not new_target)
            reset_drift_compensation(tile)
    finally:
        torch.random.set_rng_state(state)


def drift_chip(model: nn.Module, t_seconds: float, chip_seed: int) -> None:
    """Drift every tile to ``t_seconds`` after programming (read noise drawn from a seed tied to the chip
    and time, so a re-run reproduces it). t = 0 leaves the programmed weights as they are."""
    if t_seconds <= 0:
        return
    state = torch.random.get_rng_state()
    try:
        for name, j, _layer, tile in named_analog_tiles(model):
            torch.manual_seed(derive_seed(chip_seed, name, j, "drift", repr(float(t_seconds))))
            tile.drift_weights(t_seconds)
    finally:
        torch.random.set_rng_state(state)
