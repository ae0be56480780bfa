"""Per-inference energy, latency and area of an analog model, counted from its real tiles and one dry-run forward.

Why: the programming cost alone says nothing about what a deployed model costs per image, and the TSB adds
MVMs at every insertion site (one shared tile, called once per site, on g = C/k channel groups per pixel).
The counts are exact (hooks on every analog layer during one forward); the prices come from a *pricing
model*, and every figure names the model that priced it (``InferenceCost.priced_by``):

- ``"tsb-aihw constants"`` (always available, the fallback): the hand-set per-operation figures of
  :class:`CostConstants`, each cited where it is defined. With the preset's default ``cost`` section and no
  calibration inputs these give exactly the numbers this module has always given.
- the field models, when the optional extra is installed (``pip install -e '.[cost]'``, Python >= 3.12):
  ``hwcomponents-adc`` (the ADC survey regression of Andrulis et al., arXiv 2404.06553: energy and area
  per conversion from bits, technology node and rate) prices the ADCs; ``hwcomponents-neurosim`` (DNN+NeuroSim
  V1.3 circuits) prices the cells, row drivers (the input DAC), column periphery and the digital adders of
  split layers, from a cell file written from the preset (g_max, g_min, read voltage). Each is used only if
  it imports *and* runs (NeuroSim is a compiled binary); otherwise that component falls back to the
  constants and ``priced_by`` says so.

Per tile MVM (one input vector through one physical tile of ``in_i`` rows and ``out_j`` columns):

    energy  = in_i * E_DAC + out_j * E_ADC + in_i * out_j * devices_per_weight * e_cell(g, x) + E_digital
    latency = t_DAC + t_int + columns_per_adc * t_ADC   (tiles of a layer run in parallel; vectors,
                                                          layers and TSB sites run one after another)

Constants: E_ADC(b) = FOM_ADC * 2^b (Walden), E_DAC(b) = FOM_DAC * 2^b, t_ADC = b * t_SAR_bit, t_int =
``cost.mvm_read_time`` (default: the preset's verify-read time ``write_verify.t_read``) and e_cell = the
preset's verify-read energy V^2 g_max t_read per device scaled by t_int / t_read and by the *activity*
g/g_max * x/x_full (inputs as pulse widths: a cell conducts g for x/x_full of the read window). Without
calibration inputs the activity is 1 (every cell at g_max, every input full scale: an upper bound, today's
numbers); ``inference_cost(..., inputs=batch)`` measures both on the model's programmed tile weights and the
batch (per layer). Digital work is not counted by the constants; ``is_perfect`` layers (no DAC/ADC in the
model) are counted with the preset's bits if it gives them, else their conversions are free and
``periphery_priced`` is False.

``python -m tsb_aihw.analog.cost hermes`` prices one 256x256 PCM core and compares it with IBM's HERMES
chip (docs/devices.md section 4).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject

if TYPE_CHECKING:  # torch is imported where it is used: the pricing models run without it
    from aihwkit.nn.modules.base import AnalogLayerBase  # untyped: mypy reads it as Any
    from torch import Tensor, nn

#: ``priced_by`` of every figure the hand-set constants price.
CONSTANTS = "tsb-aihw constants"
#: Components a cost is split into; ``InferenceCost.priced_by`` names the model of each.
COMPONENTS = ("dac", "adc", "array", "digital", "latency", "area")
PRICING = ("auto", "constants", "field")


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


@dataclass(frozen=True)
class Activity:
    """What the array sees: mean device conductance / g_max and mean DAC input / full scale (both in [0, 1])."""

    g_frac: float = 1.0
    x_frac: float = 1.0
    source: str = "assumed full scale"


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
    energy_digital_j: float = 0.0
    latency_s: float = 0.0
    additions: int = 0  # digital partial-sum additions (layers split over several input tiles)
    g_frac: float = 1.0
    x_frac: float = 1.0
    area_m2: Optional[float] = None  # the layer's tiles (cells, drivers, ADCs); None = not priced

    @property
    def energy_j(self) -> float:
        return self.energy_dac_j + self.energy_adc_j + self.energy_array_j + self.energy_digital_j


@dataclass
class InferenceCost:
    """Energy, latency and area of one inference, per layer and in total, plus the chip's programming cost."""

    preset: str
    input_shape: tuple[int, ...]
    layers: list[LayerCost] = field(default_factory=list)
    constants: CostConstants = field(default_factory=CostConstants)
    periphery_priced: bool = True
    programming: Any = None  # ProgrammingCost of the last programming, or None if not programmed
    priced_by: dict[str, str] = field(default_factory=lambda: {k: CONSTANTS for k in COMPONENTS})
    activity: str = Activity().source
    tech_node_nm: Optional[float] = None
    notes: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return sum(layer.energy_j for layer in self.layers)

    @property
    def latency_s(self) -> float:
        return sum(layer.latency_s for layer in self.layers)

    @property
    def mvms(self) -> int:
        return sum(layer.tile_mvms for layer in self.layers)

    @property
    def area_m2(self) -> Optional[float]:
        areas = [layer.area_m2 for layer in self.layers]
        return None if any(a is None for a in areas) else float(sum(a for a in areas if a is not None))

    def to_dict(self) -> JsonObject:
        d = dataclasses.asdict(self)
        d["energy_j"], d["latency_s"], d["mvms"] = self.energy_j, self.latency_s, self.mvms
        d["area_m2"] = self.area_m2
        d["programming"] = self.programming.to_dict() if self.programming is not None else None
        for row, layer in zip(d["layers"], self.layers):
            row["energy_j"] = layer.energy_j
        return d


# ---------------------------------------------------------------------------------------------- pricing


@dataclass(frozen=True)
class Price:
    """One figure and the model that priced it: ``energy_j`` per operation, ``area_m2`` per instance."""

    energy_j: float
    priced_by: str
    area_m2: Optional[float] = None


class ConstantPricing:
    """The hand-set constants (the fallback; also what ``pricing="constants"`` forces)."""

    name = CONSTANTS

    def __init__(self, constants: CostConstants) -> None:
        self.c = constants

    def adc(self, bits: int, rate_hz: float, n_adcs: int) -> Price:
        return Price(self.c.adc_fom_j * 2**bits, CONSTANTS)

    def dac(self, bits: int, rows: int, cols: int, activity: Activity) -> Price:
        return Price(self.c.dac_fom_j * 2**bits, CONSTANTS)

    def cell(self, rows: int, cols: int, activity: Activity, e_read_full: float) -> Price:
        return Price(e_read_full * activity.g_frac * activity.x_frac, CONSTANTS)

    def adder(self, bits: int) -> Price:
        return Price(0.0, CONSTANTS + " (digital not counted)")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


class FieldPricing(ConstantPricing):
    """hwcomponents-adc for ADCs, hwcomponents-neurosim for cells, row drivers, column periphery and adders;
    each component falls back to the constants when its package is missing or does not run."""

    def __init__(self, constants: CostConstants, preset: Any) -> None:
        super().__init__(constants)
        self.preset = preset
        self.tech_m = float(preset.cost.tech_node_nm) * 1e-9
        self.notes: list[str] = []
        self.adc_model = _adc_model()
        if self.adc_model is None:
            self.notes.append("hwcomponents-adc is not installed: ADCs priced by the constants")
        self.neurosim = _neurosim_module()
        if self.neurosim is None:
            self.notes.append("hwcomponents-neurosim is not installed: cells, DAC and digital priced by the "
                              "constants")
        self._cell_file: Optional[str] = None

    # -- ADC: hwcomponents-adc ----------------------------------------------------------------------
    def adc(self, bits: int, rate_hz: float, n_adcs: int) -> Price:
        if self.adc_model is None:
            return super().adc(bits, rate_hz, n_adcs)
        model_bits = max(4, bits)  # the regression is fitted for ENOB >= 4 (it asserts)
        energy, area = _adc_price(self.adc_model, model_bits, self.tech_m, rate_hz)
        return Price(energy, f"hwcomponents-adc {_version('hwcomponents-adc')}", area)

    # -- array, drivers, adders: hwcomponents-neurosim ----------------------------------------------
    def _neurosim(self, cls_name: str, rows: int, cols: int, activity: Activity, **extra: Any) -> Optional[dict]:
        if self.neurosim is None:
            return None
        try:
            return _neurosim_query(cls_name, self._cell(), self.tech_m, max(8, rows), max(8, cols),
                                   round(activity.x_frac, 4), round(activity.g_frac, 4),
                                   float(_mvm_read_time(self.preset)), tuple(sorted(extra.items())))
        except Exception as exc:  # noqa: BLE001 - a compiled binary that does not run: say so, fall back
            note = (f"hwcomponents-neurosim {_version('hwcomponents-neurosim')} did not run "
                    f"({type(exc).__name__}: {str(exc)[:160]}); cells, DAC and digital priced by the constants")
            if note not in self.notes:
                self.notes.append(note)
            self.neurosim = None
            return None

    def _cell(self) -> str:
        if self._cell_file is None:
            self._cell_file = _write_cell_file(self.preset)
        return self._cell_file

    def dac(self, bits: int, rows: int, cols: int, activity: Activity) -> Price:
        got = self._neurosim("RowDrivers", rows, cols, activity)
        if got is None:
            return super().dac(bits, rows, cols, activity)
        return Price(got["energy"], f"hwcomponents-neurosim {_version('hwcomponents-neurosim')}", got["area"])

    def cell(self, rows: int, cols: int, activity: Activity, e_read_full: float) -> Price:
        got = self._neurosim("MemoryCell", rows, cols, activity)
        col = self._neurosim("ColDrivers", rows, cols, activity)
        if got is None or col is None:
            return super().cell(rows, cols, activity, e_read_full)
        # per device read, with the column periphery (precharge, mux) shared out over the column's cells
        energy = got["energy"] + col["energy"] / max(8, rows)
        area = got["area"] + col["area"] / (max(8, rows) * max(8, cols))
        return Price(energy, f"hwcomponents-neurosim {_version('hwcomponents-neurosim')}", area)

    def adder(self, bits: int) -> Price:
        got = self._neurosim("Adder", 8, 8, Activity(), n_bits=int(bits))
        if got is None:
            return super().adder(bits)
        return Price(got["energy"], f"hwcomponents-neurosim {_version('hwcomponents-neurosim')}", got["area"])


def _adc_model() -> Any:
    try:
        from hwcomponents_adc import ADC
    except ImportError:
        return None
    return ADC


@functools.lru_cache(maxsize=256)
def _adc_price(model: Any, bits: int, tech_m: float, rate_hz: float) -> tuple[float, float]:
    adc = model(n_bits=bits, tech_node=tech_m, throughput=rate_hz)
    return float(adc.get_energy()), float(adc.area)


def _neurosim_module() -> Any:
    try:
        import hwcomponents_neurosim.main as ns
    except ImportError:
        return None
    return ns


@functools.lru_cache(maxsize=512)
def _neurosim_query(cls_name: str, cell_file: str, tech_m: float, rows: int, cols: int, x_frac: float,
                    g_frac: float, read_time: float, extra: tuple) -> dict[str, float]:
    """One NeuroSim component's read energy (J per action) and area (m^2 per instance)."""
    import hwcomponents_neurosim.main as ns

    cls = getattr(ns, cls_name)
    if cls_name == "Adder":
        comp = cls(tech_node=tech_m, cycle_period=1e-9, **dict(extra))
    else:
        # inputs as pulse widths: NeuroSim's one-level drive for the whole window, scaled by the mean input
        comp = cls(tech_node=tech_m, cycle_period=1e-9, rows=rows, cols=cols, cols_active_at_once=cols,
                   cell_config=cell_file, average_input_value=x_frac, average_cell_value=g_frac,
                   read_pulse_width=read_time)
    return {"energy": float(comp.read().energy), "area": float(comp.area)}


def _write_cell_file(preset: Any) -> str:
    """A NVSim-format 1T1R cell for NeuroSim from the preset: on = g_max, off = g_min, read at cost.read_voltage.

    Footprint 53 F^2 with a 6 F access transistor (NVMExplorer's RRAM cell, shipped with hwcomponents-neurosim);
    NeuroSim's FinFET layout (<= 14 nm) fails on smaller cells (a 9 F^2 PCM cell divides by zero there).
    """
    noise = preset.noise
    g_max = float(getattr(noise, "g_max", 25.0)) * 1e-6
    g_min = float(getattr(noise, "g_min", 0.0)) * 1e-6
    g_off = max(g_min, g_max / 100.0)  # PCM's RESET state: ~100x below g_max (g_min = 0 has no resistance)
    wv = preset.write_verify
    text = "\n".join([
        "-MemCellType: memristor", "-CellArea (F^2): 53", "-CellAspectRatio: 1", "-AccessType: CMOS",
        # plain digits: the cell-file parser reads no "e+07"
        "-AccessCMOSWidth (F): 6", f"-ResistanceOnAtReadVoltage (ohm): {1.0 / g_max:.1f}",
        f"-ResistanceOffAtReadVoltage (ohm): {1.0 / g_off:.1f}", "-AccessTransistorResistance (ohm): 5000",
        "-ReadMode: voltage", f"-ReadVoltage (V): {preset.cost.read_voltage:.6f}", "-SetMode: voltage",
        "-SetVoltage (V): 1.5", f"-SetPulse (ns): {max(wv.t_pulse, 1e-9) * 1e9:.3f}", ""])
    fd, path = tempfile.mkstemp(prefix=f"tsb_aihw_{preset.name}_", suffix=".cell")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _mvm_read_time(preset: Any) -> float:
    """Array integration time of one MVM at full-scale input (s)."""
    t = preset.cost.mvm_read_time
    return float(preset.write_verify.t_read if t is None else t)


def make_pricing(pricing: str, constants: CostConstants, preset: Any) -> ConstantPricing:
    """``constants``: the fallback only; ``field``/``auto``: the field models where importable (same thing:
    a missing package always falls back, and ``priced_by`` records which model priced what)."""
    if pricing not in PRICING:
        raise ConfigError(f"inference_cost: pricing={pricing!r} is not one of {PRICING}")
    if pricing == "constants":
        return ConstantPricing(constants)
    return FieldPricing(constants, preset)


def field_models_available() -> dict[str, Optional[str]]:
    """Installed field-model packages and their versions (None: not importable)."""
    out: dict[str, Optional[str]] = {}
    for dist, probe in (("hwcomponents-adc", _adc_model), ("hwcomponents-neurosim", _neurosim_module)):
        out[dist] = _version(dist) if probe() is not None else None
    return out


# ---------------------------------------------------------------------------------------------- activity


def _bits(res: float, is_perfect: bool, fallback: Optional[int]) -> Optional[int]:
    """Bits of an AIHWKit resolution ``res = 1 / (2^b - 2)`` (None: no converter in the model)."""
    if is_perfect or res <= 0:
        return fallback
    steps = 1.0 / res if res < 1.0 else res
    return int(round(math.log2(steps + 2)))


def tile_conductance_fraction(tile: Any) -> float:
    """Mean device conductance / g_max of a tile's stored (programmed) weights, through the device model's
    own weight-to-conductance converter (PCM pair: the idle device at 0; RRAM differential pair: around the
    window centre). Weight-level and ideal models: mean |w| / max |w|."""
    import torch
    from torch import Tensor

    w = tile.tile.get_weights().detach().float()
    model = getattr(tile.rpu_config, "noise_model", None)
    inner = getattr(model, "inner", model)
    conv = getattr(inner, "g_converter", None)
    from tsb_aihw.devices.noise.weight_level import WeightLevelNoiseModel

    if conv is None or isinstance(inner, WeightLevelNoiseModel) or not hasattr(conv, "convert_to_conductances"):
        top = float(w.abs().max())
        return float(w.abs().mean() / top) if top > 0 else 0.0
    gs, _ = conv.convert_to_conductances(w)
    gs = [gs] if isinstance(gs, Tensor) else list(gs)
    g_max = float(conv.g_max)
    return float(torch.cat([g.reshape(-1) for g in gs]).mean() / g_max) if g_max > 0 else 0.0


def _input_fraction(rows: Tensor, io: Any) -> tuple[float, int]:
    """Sum and count of |x| / full scale of DAC inputs (noise management scales each vector to its abs-max)."""
    a = rows.abs().float()
    nm = str(getattr(io, "noise_management", "NONE")).upper()
    if "NONE" in nm or io.is_perfect:
        frac = (a / float(io.inp_bound)).clamp(max=1.0)
    else:
        top = a.amax(-1, keepdim=True)
        keep = top.view(-1) > 0
        frac = a[keep] / top[keep]
    return float(frac.sum()), int(frac.numel())


# ---------------------------------------------------------------------------------------------- counting


def _count(table: dict[float, int], price: float, n: int) -> None:
    table[price] = table.get(price, 0) + n


def inference_cost(analog_model: nn.Module, preset: Any, input_shape: Sequence[int],
                   constants: CostConstants | None = None, inputs: Tensor | None = None,
                   pricing: str = "auto") -> InferenceCost:
    """Count the MVMs and conversions of one forward of one ``input_shape`` (C, H, W) sample and price them.

    A shared block called at several sites is one tile array counted once per call. Conversion bits come
    from each tile's own forward parameters (so ``periphery.adc_bits`` overrides show up).

    Args:
        inputs: a calibration batch ``[N, C, H, W]``: the counts are per sample of it, and the array is
            priced at the conductance (programmed tile weights) and input activity it measures per layer.
            None: a zero sample, activity assumed full scale (an upper bound).
        pricing: ``auto``/``field`` = the field models where installed, else the constants;
            ``constants`` = the constants only. Passing ``constants`` implies ``pricing="constants"``.
    """
    import torch

    with torch.no_grad():
        return _inference_cost(analog_model, preset, input_shape, constants, inputs, pricing)


def _inference_cost(analog_model: nn.Module, preset: Any, input_shape: Sequence[int],
                    constants: CostConstants | None, inputs: Tensor | None, pricing: str) -> InferenceCost:
    import torch

    from tsb_aihw.analog.adc_calibration import _tile_inputs
    from tsb_aihw.analog.fast_eval import analog_layers
    from tsb_aihw.analog.tiles import tile_grid

    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"inference_cost: input_shape={tuple(input_shape)!r} must be positive sizes (C, H, W)")
    if constants is not None and pricing == "auto":
        pricing = "constants"
    const = constants or CostConstants()
    pricer = make_pricing(pricing, const, preset)
    layers = analog_layers(analog_model)
    if not layers:
        raise ConfigError("inference_cost: the model has no analog layers; convert it first "
                          "(tsb_aihw.analog.to_analog)")
    if inputs is not None and (inputs.dim() != len(shape) + 1 or tuple(inputs.shape[1:]) != shape):
        raise ConfigError(f"inference_cost: inputs of shape {tuple(inputs.shape)} do not match input_shape "
                          f"{shape}; pass a batch [N, {', '.join(map(str, shape))}]")
    batch = inputs if inputs is not None else torch.zeros((1, *shape))
    n_samples = int(batch.shape[0])
    counts = {name: [0, 0] for name, _ in layers}  # calls, vectors
    xsum: dict[str, list[list[float]]] = {}  # per layer, per tile: [sum, count] of |x| / full scale
    grids = {name: tile_grid(layer) for name, layer in layers}

    def hook(name: str):
        def fn(module: AnalogLayerBase, args: tuple, out: torch.Tensor) -> None:
            out_features = module.out_channels if hasattr(module, "kernel_size") else module.out_features
            counts[name][0] += 1
            counts[name][1] += out.numel() // out_features  # conv: n * H_out * W_out; linear: leading dims
            if inputs is not None:
                rows = _tile_inputs(module, args[0])
                acc = xsum.setdefault(name, [[0.0, 0] for _ in grids[name]])
                for k, piece in enumerate(grids[name]):
                    s, c = _input_fraction(rows[:, piece.cols], piece.tile.rpu_config.forward)
                    acc[k][0] += s
                    acc[k][1] += c
        return fn

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers]
    was_training = analog_model.training
    analog_model.eval()
    try:
        analog_model(batch)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the likely cause in one line
        raise ConfigError(f"inference_cost: a forward with input shape ({n_samples}, {', '.join(map(str, shape))}) "
                          f"failed ({type(exc).__name__}: {exc}); pass input_shape=(C, H, W) of one sample") from exc
    finally:
        for h in handles:
            h.remove()
        analog_model.train(was_training)

    wv = preset.write_verify
    per = preset.periphery
    cs = preset.cost
    t_int = _mvm_read_time(preset)
    e_read_full = wv.e_read * (t_int / wv.t_read) if wv.t_read > 0 else wv.e_read  # V^2 g_max t, per device
    result = InferenceCost(preset=preset.name, input_shape=shape, constants=const,
                           activity="measured: programmed tile weights, "
                                    f"{n_samples} calibration inputs" if inputs is not None else Activity().source,
                           tech_node_nm=float(cs.tech_node_nm) if isinstance(pricer, FieldPricing) else None)
    used: dict[str, set[str]] = {k: set() for k in COMPONENTS}
    used["latency"].add(f"{CONSTANTS} (preset read time, ADC conversion time)")
    for name, _layer in layers:
        calls, vectors_total = counts[name]
        vectors = vectors_total // n_samples if inputs is not None else vectors_total
        grid = grids[name]
        io = grid[0].tile.rpu_config.forward
        dac_bits = _bits(io.inp_res, io.is_perfect, per.dac_bits)
        adc_bits = _bits(io.out_res, io.is_perfect, per.adc_bits)
        row = LayerCost(name=name, calls=calls, vectors=vectors,
                        tiles=len(grid), tile_mvms=vectors * len(grid), dac_conversions=0, adc_conversions=0,
                        cell_reads=0, dac_bits=dac_bits, adc_bits=adc_bits)
        if inputs is not None:
            g_fracs = [tile_conductance_fraction(piece.tile) for piece in grid]
            x_fracs = [s / c if c else 0.0 for s, c in xsum.get(name, [[0.0, 0]] * len(grid))]
        else:
            g_fracs, x_fracs = [1.0] * len(grid), [1.0] * len(grid)
        ops: dict[str, dict[float, int]] = {"dac": {}, "adc": {}, "array": {}}  # price -> operations
        area: Optional[float] = 0.0
        adc_rate = 1.0 / (adc_bits * const.adc_bit_time_s) if adc_bits else 0.0
        for piece, g_f, x_f in zip(grid, g_fracs, x_fracs):
            n_in = piece.cols.stop - piece.cols.start
            n_out = piece.rows.stop - piece.rows.start
            act = Activity(g_f, x_f)
            devices = n_in * n_out * wv.devices_per_weight
            row.dac_conversions += vectors * n_in
            row.adc_conversions += vectors * n_out
            row.cell_reads += vectors * devices
            cell = pricer.cell(n_in, n_out * wv.devices_per_weight, act, e_read_full)
            _count(ops["array"], cell.energy_j, vectors * devices)
            used["array"].add(cell.priced_by)
            n_adcs = math.ceil(n_out / cs.columns_per_adc)
            tile_area = None if cell.area_m2 is None else devices * cell.area_m2
            if dac_bits is not None:
                dac = pricer.dac(dac_bits, n_in, n_out * wv.devices_per_weight, act)
                _count(ops["dac"], dac.energy_j, vectors * n_in)
                used["dac"].add(dac.priced_by)
                tile_area = None if tile_area is None or dac.area_m2 is None else tile_area + dac.area_m2
            if adc_bits is not None:
                adc = pricer.adc(adc_bits, adc_rate, n_adcs)
                _count(ops["adc"], adc.energy_j, vectors * n_out)
                used["adc"].add(adc.priced_by)
                tile_area = None if tile_area is None or adc.area_m2 is None else tile_area + n_adcs * adc.area_m2
            area = None if area is None or tile_area is None else area + tile_area
        # grouped by price, so one price for the whole layer is one product (the constants' exact numbers)
        row.energy_array_j = sum(n * e for e, n in ops["array"].items())
        row.energy_dac_j = sum(n * e for e, n in ops["dac"].items())
        row.energy_adc_j = sum(n * e for e, n in ops["adc"].items())
        row.g_frac = sum(g_fracs) / len(g_fracs)
        row.x_frac = sum(x_fracs) / len(x_fracs)
        # digital: partial sums of a layer split over several input tiles (each output adds the tiles' results)
        in_tiles = len({(p.cols.start, p.cols.stop) for p in grid})
        out_features = sum(p.rows.stop - p.rows.start for p in grid) // max(1, in_tiles)
        row.additions = vectors * (in_tiles - 1) * out_features
        if row.additions:
            add = pricer.adder((adc_bits or 8) + math.ceil(math.log2(in_tiles)))
            row.energy_digital_j = row.additions * add.energy_j
            used["digital"].add(add.priced_by)
        if dac_bits is None or adc_bits is None:
            result.periphery_priced = False
        t_mvm = (const.dac_time_s if dac_bits is not None else 0.0) + t_int + \
            (cs.columns_per_adc * adc_bits * const.adc_bit_time_s if adc_bits is not None else 0.0)
        row.latency_s = vectors * t_mvm
        row.area_m2 = area
        result.layers.append(row)
    if all(layer.area_m2 is not None for layer in result.layers):
        used["area"] = used["array"] | used["adc"] | used["dac"]
    else:
        used["area"] = {"not priced (" + CONSTANTS + " have no area)"}
    empty = {"dac": "not priced (no DAC in the model)", "adc": "not priced (no ADC in the model)",
             "digital": "no split layers (nothing to add)"}
    for key in COMPONENTS:
        if used[key]:
            result.priced_by[key] = " + ".join(sorted(used[key]))
        elif key in empty:
            result.priced_by[key] = empty[key]
    result.notes = list(getattr(pricer, "notes", []))
    from tsb_aihw.devices.programming import programming_cost
    from tsb_aihw.errors import TSBError

    try:
        result.programming = programming_cost(analog_model, preset)
    except TSBError:  # not programmed yet (or foreign tiles): no programming cost to report
        result.programming = None
    return result


# ---------------------------------------------------------------------------------------------- published chip

#: IBM HERMES (Le Gallo et al., Nat. Electron. 6, 680 (2023); arXiv 2212.02872): 64 cores of 256x256 unit
#: cells, 14 nm CMOS, PCM, 8-bit input (pulse width) / 8-bit output, one ADC per column. Chip figures for
#: 8-bit MVMs: one-phase read 63.1 TOPS at 9.76 TOPS/W, four-phase (high precision) 16.1 TOPS at 2.48 TOPS/W.
@dataclass(frozen=True)
class PublishedMode:
    """A chip's measured throughput and efficiency for one way of running its MVMs."""

    tops: float
    tops_per_w: float


@dataclass(frozen=True)
class PublishedChip:
    """A published chip's geometry and figures, which the cost model is set against."""

    rows: int
    cols: int
    cores: int
    tech_node_nm: float
    one_phase: PublishedMode
    four_phase: PublishedMode


HERMES = PublishedChip(rows=256, cols=256, cores=64, tech_node_nm=14.0, one_phase=PublishedMode(63.1, 9.76),
                       four_phase=PublishedMode(16.1, 2.48))


@dataclass(frozen=True)
class TileMvmPrice:
    """One MVM through one tile: energy (total and per part: dac, adc, array), latency, the derived figures of
    merit, the activity it was priced at and which model priced each part."""

    energy_j: float
    parts_j: dict[str, float]
    latency_s: float
    pj_per_mac: float
    tops_per_w: float
    tops_per_tile: float
    area_m2: float | None
    g_frac: float
    x_frac: float
    activity: str
    priced_by: dict[str, str]
    notes: list[str]


@dataclass(frozen=True)
class PublishedFigures:
    """A published mode's figures per core MVM, comparable to a :class:`TileMvmPrice`."""

    tops_per_w: float
    pj_per_mac: float
    energy_per_core_mvm_j: float
    core_mvm_s: float


@dataclass(frozen=True)
class ChipCheck:
    """This package's price of a published chip's core MVM at several activities, next to its published figures."""

    chip: str
    preset: str
    pricing: str
    model: list[TileMvmPrice]
    published: dict[str, PublishedFigures]

    def to_dict(self) -> JsonObject:
        return asdict(self)


def tile_mvm_price(preset: Any, rows: int, cols: int, activity: Activity, pricing: str = "auto",
                   constants: CostConstants | None = None) -> TileMvmPrice:
    """Energy and latency of one MVM through one ``rows`` x ``cols`` tile of ``preset`` (no torch needed):
    the per-tile formula of :func:`inference_cost` for one vector."""
    const = constants or CostConstants()
    pricer = make_pricing(pricing, const, preset)
    wv, per, cs = preset.write_verify, preset.periphery, preset.cost
    t_int = _mvm_read_time(preset)
    e_full = wv.e_read * (t_int / wv.t_read) if wv.t_read > 0 else wv.e_read
    dpw = wv.devices_per_weight
    cell = pricer.cell(rows, cols * dpw, activity, e_full)
    dac = pricer.dac(per.dac_bits or 8, rows, cols * dpw, activity)
    adc_bits = per.adc_bits or 8
    n_adcs = math.ceil(cols / cs.columns_per_adc)
    adc = pricer.adc(adc_bits, 1.0 / (adc_bits * const.adc_bit_time_s), n_adcs)
    parts = {"dac": rows * dac.energy_j, "adc": cols * adc.energy_j, "array": rows * cols * dpw * cell.energy_j}
    energy = sum(parts.values())
    latency = const.dac_time_s + t_int + cs.columns_per_adc * adc_bits * const.adc_bit_time_s
    ops = 2 * rows * cols
    area = None if None in (cell.area_m2, dac.area_m2, adc.area_m2) else \
        rows * cols * dpw * cell.area_m2 + dac.area_m2 + n_adcs * adc.area_m2
    return TileMvmPrice(energy_j=energy, parts_j=parts, latency_s=latency, pj_per_mac=energy / (ops / 2) * 1e12,
                        tops_per_w=ops / energy / 1e12, tops_per_tile=ops / latency / 1e12, area_m2=area,
                        g_frac=activity.g_frac, x_frac=activity.x_frac, activity=activity.source,
                        priced_by={"dac": dac.priced_by, "adc": adc.priced_by, "array": cell.priced_by,
                                   "latency": f"{CONSTANTS} (preset read time, ADC conversion time)"},
                        notes=list(getattr(pricer, "notes", [])))


def measured_tile_activity(preset: Any, rows: int = 256, cols: int = 256, n_inputs: int = 64,
                           seed: int = 0) -> Activity:
    """Activity of one programmed ``rows`` x ``cols`` tile with N(0, 1) weights and U(-1, 1) inputs."""
    import torch
    from aihwkit.nn import AnalogLinear

    torch.manual_seed(seed)
    layer = AnalogLinear(rows, cols, bias=False, rpu_config=preset.rpu_config(False))
    layer.set_weights(torch.randn(cols, rows))
    layer.eval()
    layer.program_analog_weights()
    model = nn_sequential(layer)
    cost = inference_cost(model, preset, (rows,), inputs=torch.rand(n_inputs, rows) * 2 - 1, pricing="constants")
    (row,) = cost.layers
    return Activity(row.g_frac, row.x_frac, f"measured: N(0,1) weights programmed, {n_inputs} U(-1,1) inputs")


def nn_sequential(*mods: Any) -> Any:
    from torch import nn

    return nn.Sequential(*mods)


def hermes_check(pricing: str = "auto", activities: Sequence[Activity] | None = None) -> ChipCheck:
    """Price one HERMES-sized core MVM with the pcm preset (256x256 tiles, 14 nm, one ADC per column) at the
    given activities (default: full scale, a programmed Gaussian tile, the trained-LeNet-3 level) and set it
    against the chip's published figures."""
    from tsb_aihw.devices.presets import load_preset

    preset = load_preset("pcm", mapping__max_input_size=256, mapping__max_output_size=256,
                         cost__tech_node_nm=HERMES.tech_node_nm, cost__columns_per_adc=1)
    if activities is None:
        activities = [Activity(1.0, 1.0, "full scale (every cell at g_max, every input full scale)"),
                      measured_tile_activity(preset),
                      Activity(0.15, 0.20, "trained LeNet-3 level (g 11-18 %, x 18-22 %; issue 35's check)")]
    rows = [tile_mvm_price(preset, HERMES.rows, HERMES.cols, a, pricing) for a in activities]
    core_ops = 2 * HERMES.rows * HERMES.cols
    published = {}
    for mode, m in (("one_phase", HERMES.one_phase), ("four_phase", HERMES.four_phase)):
        published[mode] = PublishedFigures(tops_per_w=m.tops_per_w, pj_per_mac=2.0 / m.tops_per_w,
                                           energy_per_core_mvm_j=core_ops / (m.tops_per_w * 1e12),
                                           core_mvm_s=core_ops * HERMES.cores / (m.tops * 1e12))
    return ChipCheck(chip="IBM HERMES (Le Gallo et al., Nat. Electron. 6, 680 (2023))", preset=preset.name,
                     pricing=pricing, model=rows, published=published)


def main(argv: Sequence[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(description="Price a published chip's core MVM with this package's models.")
    parser.add_argument("chip", choices=("hermes",))
    parser.add_argument("--pricing", choices=PRICING, default="auto")
    parser.add_argument("--activity", nargs=2, type=float, action="append", metavar=("G", "X"),
                        help="mean conductance / g_max and mean input / full scale (repeatable); default: "
                             "full scale, a programmed Gaussian tile, the trained-LeNet-3 level")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    acts = [Activity(g, x, "given") for g, x in args.activity] if args.activity else None
    res = hermes_check(args.pricing, acts)
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0
    print(f"{res.chip}; preset {res.preset}, 256x256 tile, 14 nm, pricing {res.pricing}")
    print("| activity | g/g_max | x/full | energy/MVM | pJ/MAC | TOPS/W | MVM time | array / ADC / DAC | priced by |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res.model:
        p = r.parts_j
        by = "; ".join(f"{k}: {v}" for k, v in r.priced_by.items() if k != "latency")
        print(f"| {r.activity} | {r.g_frac:.3f} | {r.x_frac:.3f} | {r.energy_j * 1e9:.3g} nJ | "
              f"{r.pj_per_mac:.3g} | {r.tops_per_w:.3g} | {r.latency_s * 1e9:.3g} ns | "
              f"{p['array'] * 1e9:.3g} / {p['adc'] * 1e9:.3g} / {p['dac'] * 1e9:.3g} nJ | {by} |")
    for mode, m in res.published.items():
        print(f"| HERMES published, {mode.replace('_', '-')} | | | {m.energy_per_core_mvm_j * 1e9:.3g} nJ | "
              f"{m.pj_per_mac:.3g} | {m.tops_per_w} | {m.core_mvm_s * 1e9:.3g} ns | | chip measurement |")
    for note in res.model[0].notes:
        print("note:", note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
