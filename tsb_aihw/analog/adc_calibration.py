"""ADC range calibration: set each tile's (or layer's) ADC output bound from calibration data after programming.

Why: AIHWKit's fixed ``out_bound = 10`` (normalised units: inputs in [-1, 1] after noise management, weights
in [-1, 1] at omega = 1) sits above what most tiles output: on LeNet-3/MNIST (PCM, shipped 8-bit ADC) the
median |output| is 15-37 ADC steps of 127 and the 99th percentile 62-154 (conv2 clips 1-2 %), so the fixed
range wastes ~1.5-2.5 bits at the median; 6-8 bits are within chip noise on that net with or without
calibration (docs/devices.md section 5, "ADC utilisation"). Real chips set the ADC
range per core/column from data after programming (e.g. HERMES, Le Gallo et al., Nat. Electron. 6, 680
(2023): per-core affine output correction; Rasch et al., Nat. Commun. 14, 5282 (2023): output ranges
calibrated post-training). Here the bound becomes the ``percentile`` of |pre-ADC output| seen on calibration
inputs; the ADC keeps its number of levels (``out_res`` is a fraction of the range), so its step shrinks with
the bound.

The pre-ADC output is recomputed from each analog layer's input exactly as the torch tile forms it (noise
management, DAC quantisation and clipping, tile weights), without output noise. Only ``TorchInferenceTile``
is supported (the C++ tile keeps its bound inside C++).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject

if TYPE_CHECKING:  # AIHWKit ships no type information: mypy reads it as Any
    from aihwkit.nn.modules.base import AnalogLayerBase

MODES = ("per_tile", "per_layer")
MAX_SAMPLES = 1 << 20  # |output| values kept per tile (evenly strided) for the percentile


@dataclass
class TileBound:
    """One tile's calibrated ADC bound and what it was set from."""

    layer: str
    tile: int
    out_bound: float
    previous: float
    samples: int
    covered: float  # fraction of calibration |outputs| <= out_bound
    p50: float  # median |pre-ADC output| (normalised units; ADC steps = value / (2 out_bound out_res))
    p99: float


@dataclass
class ADCCalibration:
    """Result of :func:`calibrate_adc`: the bound of every tile and the settings that produced it."""

    mode: str
    percentile: float
    images: int
    tiles: list[TileBound] = field(default_factory=list)

    def to_dict(self) -> JsonObject:
        import dataclasses

        return dataclasses.asdict(self)

    def bounds(self) -> dict[str, list[float]]:
        """{layer name: [out_bound of each tile, in tile_grid order]}."""
        out: dict[str, list[float]] = {}
        for t in self.tiles:
            out.setdefault(t.layer, []).append(t.out_bound)
        return out


def _own_io(tile: Any) -> Any:
    """The tile's forward IOParameters, made the one object both its config and its simulator tile read.

    AIHWKit tile arrays can share one ``_f_io`` between the simulator tiles of an array; a per-tile bound needs
    the tile's own copy (its ``rpu_config`` is already per tile)."""
    io = tile.rpu_config.forward
    sim = getattr(tile, "tile", None)
    if sim is not None and hasattr(sim, "_f_io"):
        sim._f_io = io
    return io


@torch.no_grad()
def _rebaseline(tile: Any) -> None:
    """Re-read the drift-compensation baseline at the programmed state with the new ADC bound.

    AIHWKit reads the baseline (mean |output| of a one-hot read-out) through the ADC at programming; with a
    new bound the later drift read-outs would be compared against a read-out at another bound (at 4 bits
    a wrong alpha of a factor ~2). A chip calibrates its ADC first and then takes the reference. If the tile
    has drifted since programming, alpha is recomputed against the new baseline too."""
    comp = getattr(tile.rpu_config, "drift_compensation", None)
    programmed = getattr(tile, "programmed_weights", None)
    if comp is None or programmed is None:
        return
    current = tile.tile.get_weights().clone()
    tile.tile.set_weights(programmed)
    tile.drift_baseline = comp.init_baseline(tile)
    tile.tile.set_weights(current)
    if not torch.equal(current, programmed.to(current.dtype)):
        alpha = comp.apply(tile._forward_drift_readout_tensor(), tile.drift_baseline)
        tile.__dict__.pop("alpha", None)
        tile.alpha = alpha


def _check_tile(name: str, tile: Any) -> None:
    from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile

    if type(tile) is not TorchInferenceTile:
        raise ConfigError(f"calibrate_adc: layer {name!r} has a {type(tile).__name__}; ADC calibration needs "
                          f"torch tiles (preset tile.backend: torch)")


def _tile_inputs(layer: AnalogLayerBase, x: Tensor) -> Tensor:
    """The rows the layer's tiles see: [rows, in_features] (conv: one row per output pixel patch)."""
    if hasattr(layer, "kernel_size"):
        unf = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # [n, C*kh*kw, L]
        return unf.transpose(1, 2).reshape(-1, unf.shape[1])
    return x.reshape(-1, x.shape[-1])


def _pre_adc(rows: Tensor, tile: Any) -> Tensor:
    """|pre-ADC output| of one tile on its input rows, as ``AnalogMVM`` forms it (no output noise)."""
    from tsb_aihw.analog.fast_eval import _needs, _nm_values, _prepare, _scales

    io = tile.rpu_config.forward
    need = _needs(io)
    nm = _nm_values(io, rows.abs().amax(-1, keepdim=True) if need == "absmax" else None,
                    rows.amax(-1, keepdim=True) if need == "max" else None)
    if isinstance(nm, Tensor):
        keep = (nm != 0.0).view(-1)
        rows, nm = rows[keep], nm[keep].masked_fill(nm[keep] < 0.0, 1.0)
    scale, _ = _scales(io, nm)
    from tsb_aihw.analog.fast_eval import _dac_unit

    q = _prepare(rows.clone(), scale, io)
    return (q @ (tile.tile.weight.detach() * _dac_unit(io)).T).abs()


def _subsample(v: Tensor) -> Tensor:
    v = v.reshape(-1)
    if v.numel() > MAX_SAMPLES:
        v = v[:: -(-v.numel() // MAX_SAMPLES)]
    return v


@torch.no_grad()
def calibrate_adc(analog_model: nn.Module, loader: Iterable, percentile: float = 99.9, mode: str = "per_tile",
                  max_images: int | None = 256) -> ADCCalibration:
    """Set every analog tile's ADC ``out_bound`` to the ``percentile`` of its |pre-ADC outputs| on ``loader``.

    Call after ``program_analog_weights()`` (the chip's own weights set the outputs) and again after a
    re-programming; the drift-compensation baseline is re-read at the programmed state with the new bound
    (as a chip would take its reference after setting the ADC range). Drift compensation scales after the
    ADC, so the bound stays valid while the outputs shrink with drift. ``mode="per_layer"`` gives all tiles
    of a layer one bound (their maximum).
    A shared block (one tile called at several sites) is calibrated on the outputs of all its sites.
    """
    from contextlib import ExitStack

    from tsb_aihw.analog.fast_eval import analog_layers, fast_eval_enabled, fast_forward
    from tsb_aihw.analog.tiles import tile_grid

    if mode not in MODES:
        raise ConfigError(f"calibrate_adc: mode={mode!r} is unknown; use one of {', '.join(MODES)}")
    if not 50.0 <= float(percentile) <= 100.0:
        raise ConfigError(f"calibrate_adc: percentile={percentile!r} is out of range; use 50 <= percentile <= 100")
    layers = analog_layers(analog_model)
    if not layers:
        raise ConfigError("calibrate_adc: the model has no analog layers; convert it first (tsb_aihw.analog.to_analog)")
    grids = {name: tile_grid(layer) for name, layer in layers}
    for name, grid in grids.items():
        for piece in grid:
            _check_tile(name, piece.tile)
    # only tiles with an ADC (quantised, not is_perfect) are calibrated
    wanted = {name for name, grid in grids.items()
              if any(not p.tile.rpu_config.forward.is_perfect and p.tile.rpu_config.forward.out_res > 0
                     for p in grid)}
    samples: dict[str, list[list[Tensor]]] = {n: [[] for _ in grids[n]] for n in wanted}

    def hook(name: str):
        def fn(module: nn.Module, args: tuple) -> None:
            rows = _tile_inputs(module, args[0].detach())
            for k, piece in enumerate(grids[name]):
                samples[name][k].append(_subsample(_pre_adc(rows[:, piece.cols], piece.tile)))
        return fn

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers if name in wanted]
    was_training = analog_model.training
    analog_model.eval()
    try:
        with ExitStack() as stack:
            if fast_eval_enabled():
                stack.enter_context(fast_forward(analog_model))  # same forward, faster; pre-hooks still run
            images = _run(analog_model, loader, max_images)
    finally:
        for h in handles:
            h.remove()
        analog_model.train(was_training)
    if images == 0:
        raise ConfigError("calibrate_adc: the loader yielded no images; pass a non-empty calibration loader")

    result = ADCCalibration(mode=mode, percentile=float(percentile), images=images)
    for name in (n for n, _ in layers if n in wanted):
        values = [torch.cat(v) if v else torch.zeros(1) for v in samples[name]]
        bounds = [_percentile(v, percentile) for v in values]
        if mode == "per_layer":
            bounds = [max(bounds)] * len(bounds)
        for k, (piece, v, bound) in enumerate(zip(grids[name], values, bounds)):
            io = _own_io(piece.tile)
            previous = float(io.out_bound)
            io.out_bound = bound
            _rebaseline(piece.tile)
            result.tiles.append(TileBound(layer=name, tile=k, out_bound=bound, previous=previous,
                                          samples=int(v.numel()), covered=float((v <= bound).float().mean()),
                                          p50=_percentile(v, 50.0), p99=_percentile(v, 99.0)))
    return result


def _run(model: nn.Module, loader: Iterable, max_images: int | None) -> int:
    """Forward calibration batches (inputs only) until ``max_images``; returns the images seen."""
    images = 0
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if max_images is not None:
            x = x[: max(0, max_images - images)]
        if x.shape[0] == 0:
            break
        model(x)
        images += x.shape[0]
        if max_images is not None and images >= max_images:
            break
    return images


def _percentile(values: Tensor, percentile: float) -> float:
    """The percentile of ``values`` (positive; a tile that only ever saw zeros keeps a tiny positive bound)."""
    v = values.float()
    if v.numel() > 1 << 24:
        v = v[:: -(-v.numel() // (1 << 24))]
    # "higher": the bound is a sample at or above the percentile, so it covers >= percentile of the samples
    q = float(torch.quantile(v, float(percentile) / 100.0, interpolation="higher")) if v.numel() > 1 else float(v.max())
    return max(q, 1e-6)
