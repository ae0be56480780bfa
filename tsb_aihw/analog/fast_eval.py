"""Fast evaluation of AIHWKit torch-tile layers: the same forward, computed with native kernels.

Why: AIHWKit's torch tile evaluates a conv as ``unfold`` + a dozen full-size elementwise passes over the
unfolded input per tile (copy, abs, max, mul, div, round, mul, clamp, ...), 5-20x a digital forward.
This module reproduces, for eval mode only, exactly what ``TorchInferenceTile.forward`` computes
(aihwkit 1.1 ``simulator/tiles/{inference_torch,periphery,inference}.py``, ``tiles/analog_mvm.py``):

    per tile (in-split i, out-split j), on the tile's input rows x (conv: one row per output pixel patch):
      nm   = per-row abs-max (NM ABS_MAX; MAX, CONSTANT, NONE likewise), <= 0 -> 1; all 0 -> tile output 0
      q    = clamp(quantize_DAC(x * (1/nm)), +-inp_bound)
      y    = q @ W_ij.T + out_noise * N(0, 1)          (W_ij: the tile's current programmed/drifted weights)
      y    = clamp(quantize_ADC(y), +-out_bound) * (out_scale / (1/nm))
      y    = y * mapping_scales * alpha (drift compensation) * learned out scales
    layer = sum over i of cat over j, + digital bias

The weights, alpha and scales are read from the tiles at every call (``fast_forward`` patches the layer
forwards for one evaluation), so AIHWKit stays the source of truth for programming, drift and
compensation. Differences to AIHWKit are float summation order only; the output noise is drawn in
AIHWKit's order and shape, so with the same torch seed the noisy outputs match too (tests/
test_analog_fast_eval.py). What is faster: the per-patch abs-max comes from the activation (channel max,
then window max; no unfolded temporary), the unfold + quantisation run in cache-sized batch chunks with
in-place ops, one unfold is shared by all tiles of a layer, conv outputs stay in AIHWKit's row order
(returned channels-last), and ``is_perfect`` layers become one native ``F.conv2d``/``F.linear`` with the
scales folded into the kernel. Numbers and profile: docs/performance.md.

Modes: 'exact' (the above: AIHWKit's numbers, its random stream included), 'statistical' (the same model:
noise distribution, quantisers, bounds, NM, compensation; its own noise stream, so the work is fused: one
stacked product per input split accumulated onto the drawn noise, DAC/ADC steps folded into scales and
weights, NCHW output) and 'off' (AIHWKit's forward). Switch: ``evaluate_accuracy(..., fast=None)`` follows
:func:`fast_eval_mode` (``set_fast_eval`` > env ``TSB_AIHW_FAST_EVAL=off|exact|statistical|0|1`` >
``DEFAULT_MODE``; True/1 mean the default fast mode). Layers the fast path does not reproduce (C++ tiles,
bound management, input noise, learned input ranges, ...) keep AIHWKit's forward, with a one-time warning,
in both modes.

The statistical mode's matrix product may run in bf16 (``set_fast_eval("statistical", product="bf16")``, or
``"auto"``: bf16 only where the device computes it natively): DAC codes (integers up to 2^(bits-1), exact in
bf16 up to 256) and programmed weights (rounded by at most 2^-9 relative, far below programming noise) enter the
product in bf16 with fp32 accumulation, and the result stays fp32 (a second bf16 pass takes up the rounding
of the product's bf16 output: see ``_bf16_matmul``); output noise, ADC, noise management, drift compensation
and every scale stay fp32. Measurements and caveats: docs/performance.md, "bf16 product".
"""
from __future__ import annotations

import math
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:  # AIHWKit ships no type information: mypy reads it as Any
    from aihwkit.nn.modules.base import AnalogLayerBase

ENV_VAR = "TSB_AIHW_FAST_EVAL"
CHUNK_ELEMENTS = 1 << 20  # unfolded floats per batch chunk (4 MB): keeps the elementwise passes in cache

MODES = ("off", "exact", "statistical")
DEFAULT_MODE = "statistical"  # chosen by measurement (1.1-1.4x faster than exact): docs/performance.md
PRODUCTS = ("fp32", "bf16", "auto")  # the statistical mode's matrix product
# fp32 until bf16 is measured on hardware that computes it natively (AMX, GPU): docs/performance.md
DEFAULT_PRODUCT = "fp32"
BF16_EXACT_INTEGERS = 256  # bf16 has 8 significant bits: every integer up to 2^8 is exact, 257 is not

_override: str | None = None
_product: str = DEFAULT_PRODUCT
_warned: set[str] = set()
_native: dict[str, bool] = {}  # device type -> computes bf16 natively (the CPU's flags are read once)


# ------------------------------------------------------------------------------------------------ switch
def _as_mode(value: bool | str, source: str) -> str:
    """'off' | 'exact' | 'statistical' from a mode name or the old booleans (True: the default fast mode)."""
    if isinstance(value, bool):
        return DEFAULT_MODE if value else "off"
    if isinstance(value, str):
        raw = value.strip().lower()
        if raw in MODES:
            return raw
        if raw in ("1", "true", "yes", "on"):
            return DEFAULT_MODE
        if raw in ("0", "false", "no", "off"):
            return "off"
    from tsb_aihw.errors import ConfigError

    raise ConfigError(f"{source}={value!r} is not understood; use one of {MODES} (or 1/0, True/False)")


def check_product(value: object, source: str = "product") -> str:
    """``value`` if it is one of :data:`PRODUCTS`, else one ConfigError line."""
    if value not in PRODUCTS:
        from tsb_aihw.errors import ConfigError

        raise ConfigError(f"{source}={value!r} is not a matrix-product precision; use one of {', '.join(PRODUCTS)}")
    return str(value)


def set_fast_eval(mode: bool | str | None, product: str | None = None) -> None:
    """Set the fast evaluation mode for this process: 'off' | 'exact' | 'statistical' (True: the default fast
    mode, False: 'off'; None: back to the env/default), and the statistical mode's matrix ``product``:
    'fp32' | 'bf16' | 'auto' (bf16 where the device computes it natively; None: :data:`DEFAULT_PRODUCT`)."""
    global _override, _product
    if mode is not None and not isinstance(mode, (bool, str)):
        raise TypeError(f"set_fast_eval takes 'off', 'exact', 'statistical', True, False or None, got {mode!r}")
    new_mode = None if mode is None else _as_mode(mode, "set_fast_eval")
    new_product = DEFAULT_PRODUCT if product is None else check_product(product, "set_fast_eval product")
    if new_product == "bf16" and new_mode not in (None, "statistical"):
        from tsb_aihw.errors import ConfigError

        raise ConfigError(f"set_fast_eval({new_mode!r}, product='bf16'): the bf16 product is part of the statistical "
                          "mode only (exact stays AIHWKit's fp32 numbers); use mode 'statistical' or product 'fp32'")
    _override, _product = new_mode, new_product


def fast_eval_product(product: str | None = None) -> str:
    """The requested matrix product: ``product`` if given, else ``set_fast_eval``'s (default 'fp32')."""
    return _product if product is None else check_product(product)


def fast_eval_mode(fast: bool | str | None = None) -> str:
    """``fast`` if given, else ``set_fast_eval``'s value, else env ``TSB_AIHW_FAST_EVAL``
    (off/exact/statistical or 0/1), else ``DEFAULT_MODE``."""
    if fast is not None:
        return _as_mode(fast, "fast")
    if _override is not None:
        return _override
    return check_fast_eval_env()


def fast_eval_enabled(fast: bool | str | None = None) -> bool:
    """Whether analog layers use a fast path at all (``fast_eval_mode`` is not 'off')."""
    return fast_eval_mode(fast) != "off"


def check_fast_eval_env(environ: Mapping[str, str] | None = None) -> str:
    """The mode env ``TSB_AIHW_FAST_EVAL`` asks for (unset/empty: the default); a one-line ConfigError for
    anything else. Config validation calls this before any training, so a typo does not surface only at the
    first chip evaluation, hours into a run."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    return DEFAULT_MODE if raw == "" else _as_mode(raw, ENV_VAR)


# ------------------------------------------------------------------------------------------- bf16 product
def native_bf16_device(device: torch.device, flags: Iterable[str] | None = None) -> bool:
    """Whether ``device`` computes bf16 products natively (:func:`tsb_aihw.utils.precision.native_bf16`; the
    machine's answer is cached, ``flags`` replaces the CPU's flags for tests)."""
    from tsb_aihw.utils.precision import native_bf16

    if flags is not None:
        return native_bf16(device, flags)
    if device.type not in _native:
        _native[device.type] = native_bf16(device)
    return _native[device.type]


def programming_noise(noise_model: Any) -> bool:
    """False for the exact (ideal) device model, whose programmed weights equal the targets: bf16 rounding
    would then be its only error, so ``auto`` keeps such a reference in fp32."""
    from tsb_aihw.devices.noise import IdealNoiseModel

    while hasattr(noise_model, "inner"):  # the write-verify wrapper
        noise_model = noise_model.inner
    return not isinstance(noise_model, IdealNoiseModel)


def bf16_blocker(io: Any) -> str | None:
    """Why DAC codes of forward IO config ``io`` are not exact in bf16 (None: they are, or there is no DAC: then
    the inputs, like the weights, round by at most 2^-9 relative)."""
    from aihwkit.simulator.parameters.enums import AnalogMVType

    if io.is_perfect or io.mv_type == AnalogMVType.IDEAL or io.inp_res <= 0:
        return None
    _, levels = _levels(io.inp_res, io.inp_bound)
    if levels is None:
        return f"the DAC bound {io.inp_bound:g} is not a whole number of steps, so its codes are not integers"
    if levels > BF16_EXACT_INTEGERS:
        return (f"a DAC with {levels} levels per sign exceeds the integers bf16 holds exactly "
                f"({BF16_EXACT_INTEGERS})")
    return None


def resolve_product(requested: str, mode: str, device: torch.device, io: Any, noise_model: Any,
                    flags: Iterable[str] | None = None) -> tuple[str, str | None]:
    """('fp32' | 'bf16', why a request for bf16 falls back to fp32, else None) for layers with forward IO config
    ``io`` and device model ``noise_model`` evaluated in ``mode`` on ``device``. ``auto`` is bf16 where the
    device computes it natively, the device has programming noise and the DAC codes are exact in bf16; its own
    choice of fp32 is no fallback (None)."""
    requested = check_product(requested)
    if requested == "fp32":
        return "fp32", None
    if mode != "statistical":
        wrong_mode = f"the bf16 product is part of the statistical mode only, and the mode is {mode!r}"
        return "fp32", wrong_mode if requested == "bf16" else None
    if requested == "auto" and not (native_bf16_device(device, flags) and programming_noise(noise_model)):
        return "fp32", None
    why = bf16_blocker(io)
    return ("fp32", why) if why else ("bf16", None)


def preset_product(requested: str, preset: Any, mode: str, device: torch.device | str = "cpu",
                   flags: Iterable[str] | None = None) -> str:
    """The product (``fp32`` | ``bf16``) the layers of a model deployed on ``preset`` (a DevicePreset) resolve
    ``requested`` to: what a study records and keys its cells by, never ``auto``."""
    cfg = preset.rpu_config(False)
    return resolve_product(requested, mode, torch.device(device), cfg.forward, cfg.noise_model, flags)[0]


def _warn_product_once(reason: str) -> None:
    key = f"product: {reason}"
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"bf16 product requested, but {reason}; those layers use the fp32 product", RuntimeWarning,
                      stacklevel=4)


def _bf16_matmul(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    """``a @ b`` of bf16 tensors with fp32 accumulation and an fp32 result (added to ``out`` if given).

    Why two passes: CPU (oneDNN) and cuBLAS accumulate in fp32 but round the output to bf16 (8 significant
    bits: 0.5 of an ADC step at 64-128 steps, against output noise of ~0.5 step; measured in
    docs/performance.md), and torch's CPU kernels offer no fp32 output for bf16 inputs. The second pass
    ``a @ b - hi`` (``beta=-1``: the subtraction happens in the GEMM's fp32 accumulator) recovers that rounding
    error, so ``hi + lo`` equals the fp32 product of the bf16 inputs to ~2^-16 relative."""
    hi = torch.matmul(a, b)
    if a.dim() == 2 and b.dim() == 3:  # [o, K] @ [n, K, L]
        lo = torch.baddbmm(hi, a.expand(b.shape[0], -1, -1), b, beta=-1)
    elif b.dim() == 2:  # [..., K] @ [K, N]
        lo = torch.addmm(hi.reshape(-1, hi.shape[-1]), a.reshape(-1, a.shape[-1]), b, beta=-1).view(hi.shape)
    else:
        raise ValueError(f"_bf16_matmul takes [o, K] @ [n, K, L] or [..., K] @ [K, N], got {a.shape} @ {b.shape}")
    if out is None:
        return hi.float().add_(lo)
    return out.add_(hi).add_(lo)


# ------------------------------------------------------------------------------------------- support check
class Unsupported(Exception):
    """The fast path cannot reproduce this layer; the message says why."""


def _io_reason(io: Any) -> str | None:
    from aihwkit.simulator.parameters.enums import AnalogMVType, BoundManagementType, NoiseManagementType

    if io.is_perfect or io.mv_type == AnalogMVType.IDEAL:
        return None
    checks = [
        (io.mv_type != AnalogMVType.ONE_PASS, f"mv_type {io.mv_type}"),
        (io.bound_management != BoundManagementType.NONE, f"bound management {io.bound_management}"),
        (io.noise_management not in (NoiseManagementType.NONE, NoiseManagementType.ABS_MAX,
                                     NoiseManagementType.MAX, NoiseManagementType.CONSTANT),
         f"noise management {io.noise_management}"),
        (io.inp_noise > 0, "input noise"), (io.inp_asymmetry != 0, "input asymmetry"),
        (io.out_asymmetry != 0, "output asymmetry"), (io.out_noise_std > 0, "per-output noise spread"),
        (io.inp_sto_round or io.out_sto_round, "stochastic rounding"),
    ]
    return next((why for bad, why in checks if bad), None)


def _tile_reason(tile: Any) -> str | None:
    from aihwkit.simulator.tiles.analog_mvm import AnalogMVM
    from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
    from aihwkit.simulator.tiles.torch_tile import TorchSimulatorTile

    if type(tile) is not TorchInferenceTile:
        return f"tile class {type(tile).__name__} (only TorchInferenceTile, e.g. not the C++ InferenceTile)"
    if type(tile.tile) is not TorchSimulatorTile or tile.tile._analog_mvm is not AnalogMVM:
        return f"simulator tile {type(tile.tile).__name__}"
    if tile.input_range is not None:
        return "learned input range"
    if tile.analog_bias:
        return "analog bias"
    if hasattr(tile.rpu_config.pre_post, "periph_quant"):
        return "quantized periphery"
    return _io_reason(tile.rpu_config.forward)


# ------------------------------------------------------------------------------------------------- plans
@dataclass
class _Tile:
    weight: Tensor  # [out_j, in_i], current (programmed, drifted) conductances in weight units
    post: Tensor  # [out_j]: mapping scales * alpha * learned out scales
    io: Any

    def __post_init__(self) -> None:
        self.w_dac = self.weight * _dac_unit(self.io)  # weight for inputs in DAC levels
        self.w_dac_bf16: Tensor | None = None  # the same in bf16 (set where the product runs in bf16)


def _post_scale(tile: Any) -> Tensor:
    """The digital per-output factor applied after the ADC, in AIHWKit's order of multiplication."""
    w = tile.tile.weight
    post = torch.ones(w.shape[0], dtype=w.dtype, device=w.device)
    scales = tile.get_mapping_scales()
    if scales is not None:
        post = post * scales.view(-1)
    comp = getattr(tile.rpu_config, "drift_compensation", None)
    if comp is not None:
        post = post * tile.alpha.reshape(-1)
    if tile.out_scaling_alpha is not None:
        post = post * tile.out_scaling_alpha.detach().view(-1)
    return post


def _grid(layer: AnalogLayerBase) -> tuple[list[int], list[int], list[list[Any]], Tensor | None]:
    """(in_sizes, out_sizes, tiles[i][j], digital bias) of an analog layer."""
    mod = layer.analog_module
    if hasattr(mod, "array"):
        if type(mod).__name__ != "TileModuleArray":
            raise Unsupported(f"tile array class {type(mod).__name__}")
        return list(mod.in_sizes), list(mod.out_sizes), [list(row) for row in mod.array], mod.bias
    bias = mod.bias if mod.digital_bias else None
    return [mod.in_size], [mod.out_size], [[mod]], bias


def _tiles(layer: AnalogLayerBase) -> tuple[list[int], list[int], list[list[_Tile]], Tensor | None]:
    in_sizes, out_sizes, grid, bias = _grid(layer)
    out: list[list[_Tile]] = []
    for row in grid:
        for tile in row:
            why = _tile_reason(tile)
            if why:
                raise Unsupported(why)
            if tile.training:
                raise Unsupported("tile in training mode")
        out.append([_Tile(t.tile.weight.detach(), _post_scale(t).detach(), t.rpu_config.forward) for t in row])
    return in_sizes, out_sizes, out, None if bias is None else bias.detach()


def _perfect(tiles: list[list[_Tile]]) -> bool:
    from aihwkit.simulator.parameters.enums import AnalogMVType

    flags = {bool(t.io.is_perfect or t.io.mv_type == AnalogMVType.IDEAL) for row in tiles for t in row}
    if len(flags) > 1:
        raise Unsupported("tiles with and without is_perfect in one layer")
    return flags == {True}


def _stitched(tiles: list[list[_Tile]]) -> Tensor:
    """The layer matrix [out, in] with each tile's output factor folded in (for ``is_perfect`` layers)."""
    return torch.cat([torch.cat([t.weight * t.post.view(-1, 1) for t in row], 0) for row in tiles], 1)


# ------------------------------------------------------------------------------------------- the periphery
def _quant_step(res: float, bound: float) -> float:
    """AIHWKit's ``UniformQuantize`` step: ``res`` (fraction, or number of states if > 1) x 2 bound."""
    res = 1 / res if res > 1.0 else res
    return res * 2 * bound


def _nm_values(io: Any, absmax: Tensor | None, rowmax: Tensor | None) -> Tensor | float:
    from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

    kind = io.noise_management
    if kind == NM.NONE:
        return 1.0
    if kind == NM.CONSTANT:
        return io.nm_thres if io.nm_thres > 0.0 else 1.0
    values = cast(Tensor, absmax if kind == NM.ABS_MAX else rowmax)  # the one _needs(io) has the caller pass
    if io.nm_thres > 0.0:
        values = torch.clamp(values, max=io.nm_thres)
    return values


def _needs(io: Any) -> str | None:
    from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

    return {NM.ABS_MAX: "absmax", NM.MAX: "max"}.get(io.noise_management)


def _levels(res: float, bound: float) -> tuple[float, int | None]:
    """(quantisation step, bound in steps M if it is a whole number of steps, else None).

    With a whole M (8 bit: 127), clipping the quantised value to +-bound is clipping its level to +-M, so the
    step can be folded into the next multiplication (one pass less; differences ~1e-7 relative)."""
    step = _quant_step(res, bound)
    if bound <= 0:
        return step, None
    levels = round(bound / step)
    return step, (levels if abs(bound / step - levels) < 1e-6 * max(levels, 1) else None)


def _dac_unit(io: Any) -> float:
    """What one unit of ``_prepare``'s output is worth (the step if it returns DAC levels, else 1)."""
    if io.inp_res > 0:
        step, levels = _levels(io.inp_res, io.inp_bound)
        if levels is not None:
            return step
    return 1.0


def _quantise_(t: Tensor, res: float, bound: float, clip_levels: bool = True) -> tuple[Tensor, float]:
    """AIHWKit's uniform quantisation to ``res`` and clipping to +-``bound``, in place. With a whole number of
    levels in the bound (see ``_levels``) the result stays in level units; returns (t, value of one unit).
    ``clip_levels=False`` skips the level clip where the caller guarantees it."""
    if res > 0:
        step, levels = _levels(res, bound)
        t.div_(step).round_()
        if levels is not None:
            return (t.clamp_(-levels, levels) if clip_levels else t), step
        t.mul_(step)
    limit = bound if bound > 0 else math.inf
    return t.clamp_(-limit, limit), 1.0


def _prepare(q: Tensor, scale: Tensor | float, io: Any) -> Tensor:
    """DAC, in place on ``q`` (owned rows of tile input): x scale, quantise, clip, in units of ``_dac_unit``."""
    from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

    if not (isinstance(scale, float) and scale == 1.0):
        q.mul_(scale)
    # abs-max NM without threshold already maps every row into [-1, 1] (so within +-levels)
    within = io.noise_management == NM.ABS_MAX and io.nm_thres <= 0 and io.inp_bound >= 1.0
    return _quantise_(q, io.inp_res, io.inp_bound, clip_levels=not within)[0]


def _finalize(y: Tensor, noise: Tensor | None, io: Any) -> tuple[Tensor, float]:
    """ADC, in place on ``y``: output noise, quantisation, clipping. Returns (y, value of one unit of y)."""
    if noise is not None:
        y.add_(noise)
    return _quantise_(y, io.out_res, io.out_bound)


def _scales(io: Any, nm: Tensor | float) -> tuple[Tensor | float, Tensor | float | None]:
    """(input scale, output factor) as AIHWKit computes them (None: no output rescaling)."""
    from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

    scale: Tensor | float = 1.0
    scaling = False
    if io.noise_management != NM.NONE:
        scale = 1.0 / nm
        scaling = not (isinstance(scale, float) and scale == 1.0)
    if scaling or io.out_scale != 1.0:
        return scale, io.out_scale / scale
    return scale, None


# ----------------------------------------------------------------------------------------------- linear
def _linear_forward(x: Tensor, in_sizes: list[int], tiles: list[list[_Tile]], bias: Tensor | None,
                    bf16: bool = False) -> Tensor:
    result: Tensor | None = None
    for x_i, row in zip(torch.split(x, in_sizes, dim=-1), tiles):
        outs = []
        for t in row:
            nm = _nm_values(t.io, x_i.abs().amax(-1, keepdim=True) if _needs(t.io) == "absmax" else None,
                            x_i.amax(-1, keepdim=True) if _needs(t.io) == "max" else None)
            outs.append(_tile_rows(x_i, nm, t, bf16))
        part = torch.cat(outs, -1)
        result = part if result is None else result.add_(part)
    result = cast(Tensor, result)  # in_sizes is never empty
    return result if bias is None else result + bias


def _tile_rows(x: Tensor, nm: Tensor | float, t: _Tile, bf16: bool = False) -> Tensor:
    """One tile on input rows ``x`` [..., in_i] (AIHWKit ``AnalogMVM.matmul`` without bound management);
    ``bf16``: DAC codes and weights enter the product in bf16 (fp32 result)."""
    out_shape = x.shape[:-1] + (t.weight.shape[0],)
    if isinstance(nm, Tensor):
        if t.io.inp_noise <= 0.0 and bool((nm == 0.0).all()):
            return torch.zeros(out_shape, dtype=x.dtype, device=x.device)
        nm = nm.masked_fill(nm <= 0.0, 1.0)
    scale, factor = _scales(t.io, nm)
    q = _prepare(x.clone(), scale, t.io)
    y = _bf16_matmul(q.to(torch.bfloat16), cast(Tensor, t.w_dac_bf16).T) if bf16 else q @ t.w_dac.T
    noise = t.io.out_noise * torch.randn_like(y) if t.io.out_noise > 0 else None
    y, unit = _finalize(y, noise, t.io)
    if factor is not None:
        y = y * (factor * unit)
    elif unit != 1.0:
        y = y * unit
    return y * t.post


# ------------------------------------------------------------------------------------------------- conv2d
def _channel_max(v: Tensor, absolute: bool) -> Tensor:
    """Max over dim 1 of ``v`` or of |v|. ``abs`` then ``amax``: torch's ``aminmax`` over a non-inner dim runs
    3-10x slower than the two passes on maps of 8x8 and larger (equal at 4x4; docs/performance.md)."""
    return (v.abs() if absolute else v).amax(1)


@dataclass
class _ConvGeom:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    @property
    def pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def unfold(self, x: Tensor) -> Tensor:
        """[n, C*kh*kw, L], a fresh tensor the caller may modify."""
        if self.pointwise:
            return x.reshape(x.shape[0], x.shape[1], -1).clone()
        return F.unfold(x, self.kernel, self.dilation, self.padding, self.stride)

    def unfold_scaled(self, x: Tensor, scale: Tensor | float, ho: int, wo: int) -> Tensor:
        """``unfold(x) * scale`` ([n, C*kh*kw, L]; ``scale`` per patch [n, L] or a float) in one pass: one
        multiply of a strided [n, C, kh, kw, ho, wo] view of the padded input straight into the unfolded layout
        (no im2col, no extra pass; one op instead of kh*kw: 1.3-2.3x faster at stride 1, docs/performance.md)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        n, c = x.shape[:2]
        if self.pointwise:
            return torch.mul(x, scale.view(n, 1, ho, wo) if isinstance(scale, Tensor) else scale).view(n, c, ho * wo)
        if wo < 8:  # short rows: the strided multiply costs more than im2col (measured at 4x4 maps)
            return self.unfold(x).mul_(scale.unsqueeze(1) if isinstance(scale, Tensor) else scale)
        xp = F.pad(x, (pw, pw, ph, ph)) if ph or pw else x
        s_n, s_c, s_h, s_w = xp.stride()
        windows = xp.as_strided((n, c, kh, kw, ho, wo), (s_n, s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w),
                                xp.storage_offset())
        sc = scale.view(n, 1, 1, 1, ho, wo) if isinstance(scale, Tensor) else scale
        out = torch.empty(n, c, kh, kw, ho, wo, dtype=x.dtype, device=x.device)
        return torch.mul(windows, sc, out=out).view(n, c * kh * kw, ho * wo)

    def patch_max(self, v: Tensor, cols: tuple[int, int], absolute: bool) -> Tensor:
        """Max of ``v`` (or |v|; zero-padded as unfold pads) over each patch's columns [a, b) of C*kh*kw: [N, L].

        Channels whose kh*kw columns all lie in [a, b) are reduced first (max over channels commutes with
        the window max), so the window max runs on one map; partial channels add their own offsets."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        a, b = cols
        k = kh * kw
        if self.pointwise:
            return _channel_max(v[:, a:b], absolute).flatten(1)
        ho, wo = self.out_hw(v.shape[-2], v.shape[-1])
        c0, c1 = -(-a // k), b // k  # channels whose kh*kw columns all lie in [a, b)
        maps: list[tuple[Tensor, list[int]]] = []
        if c0 < c1:
            maps.append((_channel_max(v[:, c0:c1], absolute), list(range(k))))
        for col in [*range(a, min(b, c0 * k)), *range(max(a, c1 * k, c0 * k), b)]:  # partial channels
            c, off = divmod(col, k)
            maps.append((v[:, c].abs() if absolute else v[:, c], [off]))
        out = None
        for m, offsets in maps:
            mp = F.pad(m, (pw, pw, ph, ph))
            for off in offsets:
                y, x = divmod(off, kw)
                win = mp[:, y * dh: y * dh + sh * (ho - 1) + 1: sh, x * dw: x * dw + sw * (wo - 1) + 1: sw]
                out = win.clone() if out is None else torch.maximum(out, win, out=out)
        return out.flatten(1)


def _split_plan(x: Tensor, geom: _ConvGeom, cols: tuple[int, int], row: list[_Tile], ho: int, wo: int) -> list:
    """Per tile of one input split: (all NM values 0, input scale, output factor, output noise).

    NM values come from the activation (no unfolded copy). The noise is drawn here, in AIHWKit's tile order
    and shape ([N, L, out_j], ``out_noise * randn``); a tile whose NM values are all 0 draws none, as in
    AIHWKit."""
    maxima: dict[str, Tensor] = {}
    plan = []
    for t in row:
        need = _needs(t.io)
        if need and need not in maxima:
            maxima[need] = geom.patch_max(x, cols, absolute=need == "absmax")
        nm = _nm_values(t.io, maxima.get("absmax"), maxima.get("max"))
        zero = isinstance(nm, Tensor) and t.io.inp_noise <= 0.0 and bool((nm == 0.0).all())
        if isinstance(nm, Tensor):
            nm = nm.masked_fill(nm <= 0.0, 1.0)
        scale, factor = _scales(t.io, nm)
        noise = None
        if not zero and t.io.out_noise > 0:
            noise = torch.empty(x.shape[0], ho * wo, t.weight.shape[0], dtype=x.dtype, device=x.device)
            noise.normal_(0.0, t.io.out_noise)
        plan.append((zero, scale, factor, noise))
    return plan


def _conv_forward(x: Tensor, geom: _ConvGeom, in_sizes: list[int], tiles: list[list[_Tile]],
                  bias: Tensor | None, out_channels: int) -> Tensor:
    """Input split by input split (AIHWKit's tile order, so only one split's noise is held at a time), each
    in batch chunks: unfold the split's channels, DAC once, one product per tile, ADC, scale, accumulate."""
    n = x.shape[0]
    ho, wo = geom.out_hw(x.shape[-2], x.shape[-1])
    k = geom.kernel[0] * geom.kernel[1]
    # Output rows in AIHWKit's [N, L, out] order (noise, ADC and scales run contiguously), returned as a
    # channels-last view of [N, C, H, W]. Input split 0 writes, the others add.
    out = torch.empty(n, ho * wo, out_channels, dtype=x.dtype, device=x.device)
    start = 0
    for i, (size, row) in enumerate(zip(in_sizes, tiles)):
        a, b = start, start + size
        start = b
        c_lo, c_hi = a // k, -(-b // k)  # channels this split's columns touch
        off = a - c_lo * k
        plan = _split_plan(x, geom, (a, b), row, ho, wo)
        shared = all(other.io == row[0].io for other in row)
        live = [p for p in plan if not p[0]]
        prescale = shared and bool(live)  # one input scale for the split: apply it while unfolding
        step = max(1, CHUNK_ELEMENTS // max(1, (c_hi - c_lo) * k * ho * wo))
        for s in range(0, n, step):
            e = min(n, s + step)
            if prescale:  # the same float product x * scale as AIHWKit's, fused into the unfold
                sc0 = live[0][1]
                unf = geom.unfold_scaled(x[s:e, c_lo:c_hi], sc0[s:e] if isinstance(sc0, Tensor) else sc0,
                                         ho, wo)[:, off:off + size]
            else:
                unf = geom.unfold(x[s:e, c_lo:c_hi])[:, off:off + size]
            quantised: tuple[Any, Tensor] | None = None  # tiles of one split share the DAC output
            row_start = 0
            for t, (zero, scale, factor, noise) in zip(row, plan):
                rows = slice(row_start, row_start + t.weight.shape[0])
                row_start = rows.stop
                if zero:
                    if i == 0:
                        out[s:e, :, rows] = 0.0
                    continue
                if quantised is None or quantised[0] != t.io:
                    sc = 1.0 if prescale else scale[s:e].unsqueeze(1) if isinstance(scale, Tensor) else scale
                    quantised = (t.io, _prepare(unf if shared else unf.clone(), sc, t.io))
                y = torch.matmul(quantised[1].transpose(1, 2), t.w_dac.T)  # [n, L, out_j]
                y, unit = _finalize(y, None if noise is None else noise[s:e], t.io)
                if factor is not None:
                    y.mul_(factor[s:e].unsqueeze(2) * unit if isinstance(factor, Tensor) else factor * unit)
                elif unit != 1.0:
                    y.mul_(unit)
                if i == 0:
                    torch.mul(y, t.post, out=out[s:e, :, rows])
                else:
                    out[s:e, :, rows].addcmul_(y, t.post)
    if bias is not None:
        out += bias
    return out.view(n, ho, wo, out_channels).permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------- conv2d, statistical mode
@dataclass
class _Group:
    """Consecutive tiles of one input split with the same IO: one DAC, one stacked product, one ADC."""

    io: Any
    rows: slice  # output channels of the layer
    weight: Tensor  # [out_g, in_i]: stacked tile weights x DAC unit / ADC step
    post: Tensor  # [out_g, 1]: mapping scales * alpha * learned out scales
    noise_std: float  # output noise in ADC steps
    adc_unit: float  # value of one unit of the product in the ADC's output units (1: ADC in value units)
    adc_levels: int | None  # clip to +-levels in ADC steps (None: the ADC runs in value units)
    weight_bf16: Tensor | None = None  # ``weight`` in bf16 where the product runs in bf16


def _groups(row: list[_Tile]) -> list[_Group]:
    """Fold the ADC step into the weights and the noise where the bound is a whole number of steps."""
    out: list[_Group] = []
    start = 0
    members: list[_Tile] = []

    def close() -> None:
        nonlocal start
        io = members[0].io
        size = sum(t.weight.shape[0] for t in members)
        w = torch.cat([t.w_dac for t in members], 0)
        post = torch.cat([t.post for t in members], 0).view(-1, 1)
        step, levels = _levels(io.out_res, io.out_bound) if io.out_res > 0 else (1.0, None)
        if levels is None:
            step = 1.0
        out.append(_Group(io, slice(start, start + size), (w / step).contiguous(), post, io.out_noise / step,
                          step, levels))
        start += size

    for t in row:
        if members and t.io != members[0].io:
            close()
            members = []
        members.append(t)
    close()
    return out


def _adc_stat(y: Tensor, g: _Group) -> Tensor:
    """ADC in place on the product (already holding the noise): quantise and clip; in ADC steps if whole."""
    if g.adc_levels is not None:
        return y.round_().clamp_(-g.adc_levels, g.adc_levels)
    return _quantise_(y, g.io.out_res, g.io.out_bound)[0] if g.io.out_res > 0 or g.io.out_bound > 0 else y


def _conv_forward_stat(x: Tensor, geom: _ConvGeom, in_sizes: list[int], groups: list[list[_Group]],
                       bias: Tensor | None, out_channels: int, bf16: bool = False) -> Tensor:
    """The same model as ``_conv_forward`` with the work fused where AIHWKit's random stream no longer
    constrains it: per input split, tiles with the same IO share one DAC pass and one stacked product in
    [N, out, L] order (NCHW output, no transposes); the noise is drawn into the product's buffer first and
    the product accumulates onto it (``baddbmm``: no separate add pass); the DAC and ADC steps are folded
    into the input scale and the weights (one division pass less each). ``bf16``: the DAC codes and weights
    enter the product in bf16 (``_bf16_matmul``, fp32 result, added onto the fp32 noise)."""
    n = x.shape[0]
    ho, wo = geom.out_hw(x.shape[-2], x.shape[-1])
    L = ho * wo
    k = geom.kernel[0] * geom.kernel[1]
    out = torch.empty(n, out_channels, L, dtype=x.dtype, device=x.device)
    start = 0
    for i, (size, row) in enumerate(zip(in_sizes, groups)):
        a, b = start, start + size
        start = b
        c_lo, c_hi = a // k, -(-b // k)
        off = a - c_lo * k
        plans = []
        maxima: dict[str, Tensor] = {}
        for g in row:
            need = _needs(g.io)
            if need and need not in maxima:
                maxima[need] = geom.patch_max(x, (a, b), absolute=need == "absmax")
            nm = _nm_values(g.io, maxima.get("absmax"), maxima.get("max"))
            zero = isinstance(nm, Tensor) and bool((nm == 0.0).all())
            if isinstance(nm, Tensor):
                nm = nm.masked_fill(nm <= 0.0, 1.0)
            scale, factor = _scales(g.io, nm)
            dac_step, dac_levels = _levels(g.io.inp_res, g.io.inp_bound) if g.io.inp_res > 0 else (1.0, None)
            if dac_levels is not None:  # the DAC step folded into the input scale: one pass less
                scale = scale / dac_step
            # the ADC step is not folded into the weights (DAC levels are): one output factor per patch
            if isinstance(factor, Tensor):
                factor = (factor * g.adc_unit).unsqueeze(1)
            else:
                factor = g.adc_unit if factor is None else factor * g.adc_unit
            plans.append((zero, scale, factor, dac_levels))
        step = max(1, CHUNK_ELEMENTS // max(1, (c_hi - c_lo) * k * L))
        fused = len(row) == 1 and plans[0][3] is not None  # one DAC: scale while unfolding
        for s in range(0, n, step):
            e = min(n, s + step)
            if fused:
                zero, scale = plans[0][:2]
                sc = scale[s:e] if isinstance(scale, Tensor) else scale
                unf = None if zero else geom.unfold_scaled(x[s:e, c_lo:c_hi], sc, ho, wo)[:, off:off + size]
            else:
                unf = geom.unfold(x[s:e, c_lo:c_hi])[:, off:off + size]
            for gi, (g, (zero, scale, factor, dac_levels)) in enumerate(zip(row, plans)):
                dst = out[s:e, g.rows]
                if zero:  # AIHWKit returns 0 for a tile whose inputs are all 0 (no noise drawn)
                    if i == 0:
                        dst.zero_()
                    continue
                q = cast(Tensor, unf)  # None only for a zero tile, skipped above
                q = q if gi == len(row) - 1 else q.clone()
                if not fused:  # the input scale (fused: applied while unfolding)
                    sc = scale[s:e].unsqueeze(1) if isinstance(scale, Tensor) else scale
                    q = q.mul_(sc) if dac_levels is not None else _prepare(q, sc, g.io)
                if dac_levels is not None:
                    q.round_()
                    if not _abs_max_within(g.io):
                        q.clamp_(-dac_levels, dac_levels)
                y = torch.empty(e - s, g.weight.shape[0], L, dtype=x.dtype, device=x.device)
                if bf16:  # codes are integers <= 256 here (bf16_blocker): exact in bf16
                    _bf16_matmul(cast(Tensor, g.weight_bf16), q.to(torch.bfloat16),
                                 out=y.normal_(0.0, g.noise_std) if g.noise_std > 0 else y.zero_())
                elif g.noise_std > 0:
                    y.normal_(0.0, g.noise_std).baddbmm_(g.weight.expand(e - s, -1, -1), q)
                else:
                    torch.matmul(g.weight, q, out=y)
                y = _adc_stat(y, g)
                f = factor[s:e] if isinstance(factor, Tensor) else factor
                y.mul_(g.post)
                if i == 0:
                    torch.mul(y, f, out=dst)
                elif isinstance(f, Tensor):
                    dst.addcmul_(y, f)
                else:
                    dst.add_(y, alpha=f)
    if bias is not None:
        out += bias.view(1, -1, 1)
    return out.view(n, out_channels, ho, wo)


def _abs_max_within(io: Any) -> bool:
    """Abs-max NM without threshold maps every row into [-1, 1], so the DAC's level clip is a no-op."""
    from aihwkit.simulator.parameters.enums import NoiseManagementType as NM

    return io.noise_management == NM.ABS_MAX and io.nm_thres <= 0 and io.inp_bound >= 1.0


# ------------------------------------------------------------------------------------------- the patching
class FastLayer:
    """The fast forward of one analog layer, reading its tiles' current state at construction. ``product``:
    the statistical mode's matrix product as requested (:func:`resolve_product` gives ``self.product``)."""

    def __init__(self, layer: AnalogLayerBase, mode: str = "exact", product: str = "fp32") -> None:
        from aihwkit.nn.modules.conv import AnalogConv2d
        from aihwkit.nn.modules.linear import AnalogLinear

        self.layer = layer
        if type(layer) is AnalogConv2d:
            if layer.use_indexed:
                raise Unsupported("indexed convolution")
            self.geom: _ConvGeom | None = _ConvGeom(tuple(layer.kernel_size), tuple(layer.stride),
                                                     tuple(layer.padding), tuple(layer.dilation))
            self.out_channels = layer.out_channels
            self.in_channels = layer.in_channels
        elif type(layer) is AnalogLinear:
            self.geom = None
        else:
            raise Unsupported(f"layer class {type(layer).__name__} (only AnalogConv2d and AnalogLinear)")
        self.in_sizes, _, self.tiles, self.bias = _tiles(layer)
        self.dense: Tensor | None = None
        if _perfect(self.tiles):  # exact matmul: fold everything into one native kernel
            w = _stitched(self.tiles)
            self.dense = w if self.geom is None else w.view(self.out_channels, self.in_channels, *self.geom.kernel)
        if mode not in ("exact", "statistical"):
            raise ValueError(f"FastLayer mode must be 'exact' or 'statistical', got {mode!r}")
        self.mode = mode
        # statistical convs: tiles grouped per input split (linear layers are cheap: same code in both modes)
        self.groups = ([_groups(row) for row in self.tiles]
                       if mode == "statistical" and self.geom is not None and self.dense is None else None)
        first = _grid(layer)[2][0][0]
        self.product, why = resolve_product(product, mode, self.tiles[0][0].weight.device, self.tiles[0][0].io,
                                            first.rpu_config.noise_model)
        if why:
            _warn_product_once(why)
        self.dense_post: Tensor | None = None
        if self.product == "bf16":
            self._to_bf16()

    def _to_bf16(self) -> None:
        """bf16 copies of what enters the product; every scale stays fp32 (with one input split, also the
        ``is_perfect`` layer's: its kernel is then the raw weights, the scales multiply the fp32 result)."""
        bf16 = torch.bfloat16
        for row in self.tiles:
            for t in row:
                t.w_dac_bf16 = t.w_dac.to(bf16)
        for grow in self.groups or []:
            for g in grow:
                g.weight_bf16 = g.weight.to(bf16)
        if self.dense is not None:
            w = self.dense
            if len(self.tiles) == 1:
                w = torch.cat([t.weight for t in self.tiles[0]], 0)
                self.dense_post = torch.cat([t.post for t in self.tiles[0]], 0)
            self.dense = w.to(bf16).view(self.dense.shape)

    def __call__(self, x: Tensor) -> Tensor:
        if self.layer.training or (torch.is_grad_enabled() and x.requires_grad) or (
                self.geom is not None and x.dim() != 4):
            return type(self.layer).forward(self.layer, x)  # training/autograd/unbatched: AIHWKit's own
        bf16 = self.product == "bf16"
        if self.geom is None:
            if self.dense is not None:
                if bf16:
                    return self._scaled(_bf16_matmul(x.to(torch.bfloat16), self.dense.T), -1)
                return F.linear(x, self.dense, self.bias)
            return _linear_forward(x, self.in_sizes, self.tiles, self.bias, bf16)
        if self.dense is not None:
            g = self.geom
            if bf16:  # one native bf16 conv: its output rounds to bf16 (2^-9 relative; no output noise here)
                y = F.conv2d(x.to(torch.bfloat16), self.dense, None, g.stride, g.padding, g.dilation)
                return self._scaled(y.float(), 1)
            return F.conv2d(x, self.dense, self.bias, g.stride, g.padding, g.dilation)
        if self.groups is not None:
            return _conv_forward_stat(x, self.geom, self.in_sizes, self.groups, self.bias, self.out_channels, bf16)
        return _conv_forward(x, self.geom, self.in_sizes, self.tiles, self.bias, self.out_channels)

    def _scaled(self, y: Tensor, dim: int) -> Tensor:
        """The bf16 ``is_perfect`` result (fp32) times its output scales, plus the digital bias, along ``dim``."""
        shape = [1] * y.dim()
        shape[dim] = -1
        if self.dense_post is not None:
            y.mul_(self.dense_post.view(shape))
        return y if self.bias is None else y.add_(self.bias.view(shape))


def _warn_once(name: str, reason: str) -> None:
    key = f"{name}: {reason}"
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"fast evaluation does not support analog layer {name!r} ({reason}); this layer is "
                      f"evaluated with AIHWKit's own forward (same numbers, slower)", RuntimeWarning, stacklevel=3)


def analog_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every (non-container) AIHWKit analog layer of ``model`` with its name."""
    from aihwkit.nn.modules.base import AnalogLayerBase

    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, AnalogLayerBase) and not getattr(m, "IS_CONTAINER", False)]


@contextmanager
def chip_forward(model: nn.Module, fast: bool | str | None = None, product: str | None = None) -> Iterator[str]:
    """Within the block, ``model``'s analog layers run the forward ``fast`` selects (:func:`fast_eval_mode`:
    'off' keeps AIHWKit's) with the statistical mode's matrix ``product`` (:func:`fast_eval_product`). The one
    switch for every pass through a chip that is not training it (accuracy, BN re-estimation), so they all
    compute the same model. Yields the mode."""
    mode = fast_eval_mode(fast)
    if mode == "off":
        yield mode
        return
    with fast_forward(model, mode, fast_eval_product(product)):
        yield mode


@contextmanager
@torch.no_grad()
def fast_forward(model: nn.Module, mode: str = "exact", product: str = "fp32") -> Iterator[dict[str, str]]:
    """Within the block, every supported analog layer of ``model`` (in eval mode) runs the fast forward.

    ``mode``: 'exact' reproduces AIHWKit's numbers (its random stream included); 'statistical' is the same
    model (distributions, quantisers, bounds, NM, compensation) with its own noise stream and fused work.
    ``product``: the statistical mode's matrix product, 'fp32' | 'bf16' | 'auto' (:func:`resolve_product`).

    Yields ``{layer name: reason}`` of the layers left on AIHWKit's forward (each warned about once).
    The tile state is read on entry: re-enter after programming or drift.
    """
    patched: list[tuple[nn.Module, Any]] = []
    skipped: dict[str, str] = {}
    try:
        for name, layer in analog_layers(model):
            try:
                fast = FastLayer(layer, mode, product)
            except Unsupported as exc:
                skipped[name] = str(exc)
                _warn_once(name, str(exc))
                continue
            patched.append((layer, layer.__dict__.get("forward")))
            layer.forward = fast  # instance attribute: nn.Module.__call__ dispatches to it
        yield skipped
    finally:
        for layer, previous in patched:
            if previous is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = previous
