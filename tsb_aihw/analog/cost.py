"""Per-inference energy and latency of an analog model, counted from its real tiles and one dry-run forward.

Why: the programming cost alone says nothing about what a deployed model costs per image, and the TSB adds
MVMs at every insertion site (one shared tile, called once per site, on g = C/k channel groups per pixel).
The counts are exact (hooks on every analog layer during one forward of one sample); the prices are
per-operation figures, each cited where it is defined (:class:`CostConstants`), so the totals are
order-of-magnitude estimates: compare methods by ratio.

Per tile MVM (one input vector through one physical tile of ``in_i`` rows and ``out_j`` columns):

    energy  = in_i * E_DAC(b_dac) + out_j * E_ADC(b_adc) + in_i * out_j * devices_per_weight * e_cell
    latency = t_DAC + t_int + b_adc * t_SAR_bit        (tiles of a layer run in parallel; vectors,
                                                       layers and TSB sites run one after another)

with E_ADC(b) = FOM_ADC * 2^b (Walden figure of merit), E_DAC(b) = FOM_DAC * 2^b, e_cell = the preset's
verify-read energy (V^2 g_max t_read per device, an upper bound: real cells sit below g_max) and t_int the
preset's read time. Digital work (partial-sum additions of split layers, BN, activations, pooling) is not
counted; ``is_perfect`` layers (no DAC/ADC in the model) are counted with the preset's bits if it gives them,
else their conversions are free and ``periphery_priced`` is False.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
from torch import nn

from tsb_aihw.errors import ConfigError


@dataclass(frozen=True)
class CostConstants:
    """Per-operation figures (J, s). Each default names its source; override to price another technology."""

    #: Walden FOM E = FOM * 2^b per conversion (R. H. Walden, IEEE JSAC 17, 539 (1999)). 10 fJ/conv-step is
    #: a moderate SAR value: B. Murmann, "ADC Performance Survey 1997-2024" (Stanford), lists many SAR ADCs
    #: at or below 10 fJ/conv-step (the best near 1 fJ).
    adc_fom_j: float = 10e-15
    #: One SAR comparison per bit; 1 ns per bit cycle (our estimate for a column SAR ADC).
    adc_bit_time_s: float = 1e-9
    #: Input DAC, same Walden form at a tenth of the ADC figure: a row driver is a switch network without a
    #: comparator chain (our estimate; no per-conversion DAC figure is given by the TSB paper).
    dac_fom_j: float = 1e-15
    #: DAC settling time per input vector (our estimate).
    dac_time_s: float = 1e-9


@dataclass
class LayerCost:
    """One analog layer's counts and cost per inference (one input sample)."""

    name: str
    calls: int  # forward calls per sample (a shared block: one per site)
    vectors: int  # input vectors (rows) per sample over all calls
    tiles: int
    tile_mvms: int  # vectors x tiles
    dac_conversions: int
    adc_conversions: int
    cell_reads: int  # device reads (cells x devices per weight) over all MVMs
    dac_bits: Optional[int]
    adc_bits: Optional[int]
    energy_dac_j: float = 0.0
    energy_adc_j: float = 0.0
    energy_array_j: float = 0.0
    latency_s: float = 0.0

    @property
    def energy_j(self) -> float:
        return self.energy_dac_j + self.energy_adc_j + self.energy_array_j


@dataclass
class InferenceCost:
    """Energy and latency of one inference, per layer and in total, plus the chip's programming cost."""

    preset: str
    input_shape: tuple[int, ...]
    layers: list[LayerCost] = field(default_factory=list)
    constants: CostConstants = field(default_factory=CostConstants)
    periphery_priced: bool = True
    programming: Any = None  # ProgrammingCost of the last programming, or None if not programmed

    @property
    def energy_j(self) -> float:
        return sum(layer.energy_j for layer in self.layers)

    @property
    def latency_s(self) -> float:
        return sum(layer.latency_s for layer in self.layers)

    @property
    def mvms(self) -> int:
        return sum(layer.tile_mvms for layer in self.layers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["energy_j"], d["latency_s"], d["mvms"] = self.energy_j, self.latency_s, self.mvms
        d["programming"] = self.programming.to_dict() if self.programming is not None else None
        for row, layer in zip(d["layers"], self.layers):
            row["energy_j"] = layer.energy_j
        return d


def _bits(res: float, is_perfect: bool, fallback: Optional[int]) -> Optional[int]:
    """Bits of an AIHWKit resolution ``res = 1 / (2^b - 2)`` (None: no converter in the model)."""
    if is_perfect or res <= 0:
        return fallback
    steps = 1.0 / res if res < 1.0 else res
    return int(round(math.log2(steps + 2)))


@torch.no_grad()
def inference_cost(analog_model: nn.Module, preset: Any, input_shape: Sequence[int],
                   constants: CostConstants | None = None) -> InferenceCost:
    """Count the MVMs and conversions of one forward of one ``input_shape`` (C, H, W) sample and price them.

    A shared block called at several sites is one tile array counted once per call. Conversion bits come
    from each tile's own forward parameters (so ``periphery.adc_bits`` overrides show up).
    """
    from tsb_aihw.analog.fast_eval import analog_layers
    from tsb_aihw.analog.tiles import tile_grid

    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"inference_cost: input_shape={tuple(input_shape)!r} must be positive sizes (C, H, W)")
    const = constants or CostConstants()
    layers = analog_layers(analog_model)
    if not layers:
        raise ConfigError("inference_cost: the model has no analog layers; convert it first "
                          "(tsb_aihw.analog.to_analog)")
    counts = {name: [0, 0] for name, _ in layers}  # calls, vectors

    def hook(name: str):
        def fn(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            out_features = module.out_channels if hasattr(module, "kernel_size") else module.out_features
            counts[name][0] += 1
            counts[name][1] += out.numel() // out_features  # conv: n * H_out * W_out; linear: leading dims
        return fn

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers]
    was_training = analog_model.training
    analog_model.eval()
    try:
        analog_model(torch.zeros((1, *shape)))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the likely cause in one line
        raise ConfigError(f"inference_cost: a forward with input shape (1, {', '.join(map(str, shape))}) failed "
                          f"({type(exc).__name__}: {exc}); pass input_shape=(C, H, W) of one sample") from exc
    finally:
        for h in handles:
            h.remove()
        analog_model.train(was_training)

    wv = preset.write_verify
    per = preset.periphery
    result = InferenceCost(preset=preset.name, input_shape=shape, constants=const)
    for name, layer in layers:
        calls, vectors = counts[name]
        grid = tile_grid(layer)
        io = grid[0].tile.rpu_config.forward
        dac_bits = _bits(io.inp_res, io.is_perfect, per.dac_bits)
        adc_bits = _bits(io.out_res, io.is_perfect, per.adc_bits)
        row = LayerCost(name=name, calls=calls, vectors=vectors, tiles=len(grid), tile_mvms=vectors * len(grid),
                        dac_conversions=0, adc_conversions=0, cell_reads=0, dac_bits=dac_bits, adc_bits=adc_bits)
        for piece in grid:
            n_in = piece.cols.stop - piece.cols.start
            n_out = piece.rows.stop - piece.rows.start
            row.dac_conversions += vectors * n_in
            row.adc_conversions += vectors * n_out
            row.cell_reads += vectors * n_in * n_out * wv.devices_per_weight
        if dac_bits is not None:
            row.energy_dac_j = row.dac_conversions * const.dac_fom_j * 2**dac_bits
        if adc_bits is not None:
            row.energy_adc_j = row.adc_conversions * const.adc_fom_j * 2**adc_bits
        if dac_bits is None or adc_bits is None:
            result.periphery_priced = False
        row.energy_array_j = row.cell_reads * wv.e_read
        t_mvm = (const.dac_time_s if dac_bits is not None else 0.0) + wv.t_read + \
            (adc_bits * const.adc_bit_time_s if adc_bits is not None else 0.0)
        row.latency_s = vectors * t_mvm
        result.layers.append(row)
    from tsb_aihw.devices.programming import programming_cost
    from tsb_aihw.errors import TSBError

    try:
        result.programming = programming_cost(analog_model, preset)
    except TSBError:  # not programmed yet (or foreign tiles): no programming cost to report
        result.programming = None
    return result
