"""The device-preset schema: nested dataclasses whose field metadata is the one range/choice table.

Every key a preset YAML may hold is a dataclass field below; its type hint gives the type, its metadata the
allowed range or choices and, for write-verify numbers, whether it must be given. ``build_preset`` turns a
raw (YAML) mapping into the validated tree and raises :class:`ConfigError` naming file, key, value, allowed
range and the fix.
"""
from __future__ import annotations

import difflib
import math
import numbers
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Optional, Union

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.text import short_repr

# ---------------------------------------------------------------------------------------------- helpers


def _f(default: Any = MISSING, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
       hi_open: bool = False, choices: tuple | None = None, required: bool = False, doc: str = "",
       max_len: int | None = None) -> Any:
    """A schema field: default plus the range/choices metadata that validation reads."""
    meta = dict(lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices, required=required, doc=doc,
                max_len=max_len)
    if required:
        return field(default=None, metadata=meta)
    return field(default=default, metadata=meta)


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata=dict(section=True))


# ---------------------------------------------------------------------------------------------- noise


@dataclass
class PCMNoise:
    """AIHWKit ``PCMLikeNoiseModel`` (Nandakumar et al. ICECS 2019; Joshi et al. Nat. Commun. 2020)."""

    model: str = "pcm"
    g_max: float = _f(25.0, lo=0.0, hi=1e4, lo_open=True, doc="uS, abs-max weight maps to g_max")
    prog_noise_scale: float = _f(1.0, lo=0.0, hi=100.0, doc="scale of the fitted programming noise")
    read_noise_scale: float = _f(1.0, lo=0.0, hi=100.0, doc="scale of the 1/f read noise")
    drift_scale: float = _f(1.0, lo=0.0, hi=100.0, doc="scale of the drift exponent nu")
    t_0: float = _f(20.0, lo=0.0, hi=1e6, lo_open=True, doc="s, first read after programming (drift fit)")
    t_read: float = _f(250e-9, lo=0.0, hi=1.0, lo_open=True, doc="s, read duration of the 1/f fit")


@dataclass
class ReRamCMONoise:
    """AIHWKit ``ReRamCMONoiseModel`` (CMO/HfOx ReRAM, IBM Research Zurich; Falcone et al., in review)."""

    model: str = "reram-cmo"
    acceptance_range: float = _f(2.0, choices=(0.2, 2.0),
                                 doc="percent of g_T; AIHWKit has fits only for 0.2 and 2 (dict keys)")
    g_max: float = _f(88.199997, lo=0.0, hi=1e4, lo_open=True, doc="uS, max weight maps here")
    g_min: float = _f(9.0, lo=0.0, hi=1e4, doc="uS, min weight maps here")
    prog_noise_scale: float = _f(1.0, lo=0.0, hi=100.0)
    read_noise_scale: float = _f(1.0, lo=0.0, hi=100.0)
    drift_scale: float = _f(1.0, lo=0.0, hi=100.0)


@dataclass
class NVCIMGaussianNoise:
    """The TSB group's device-variation model (NF_Training): Gaussian per device, bit-sliced weights."""

    model: str = "nvcim-gaussian"
    sigma: float = _f(0.35, lo=0.0, hi=2.0, doc="device std relative to one device's top level")
    weight_bits: int = _f(8, lo=1, hi=32)
    device_bits: int = _f(2, lo=1, hi=16)


@dataclass
class IdealNoise:
    """No programming noise, drift or read noise: the exact-weight reference."""

    model: str = "ideal"


NOISE_MODELS: dict[str, type] = {
    "pcm": PCMNoise,
    "reram-cmo": ReRamCMONoise,
    "nvcim-gaussian": NVCIMGaussianNoise,
    "ideal": IdealNoise,
}
NoiseSpec = Union[PCMNoise, ReRamCMONoise, NVCIMGaussianNoise, IdealNoise]

# ---------------------------------------------------------------------------------------------- the rest


@dataclass
class PeripherySpec:
    """Forward-pass periphery (AIHWKit ``IOParameters``)."""

    is_perfect: bool = _f(False, doc="exact MVM: no DAC/ADC, no output noise (device noise still applies)")
    # AIHWKit's quantiser step is 1 / (2**bits - 2) (levels symmetric around 0): 1 bit divides by zero
    dac_bits: Optional[int] = _f(8, lo=2, hi=24, doc="input DAC bits; null = no input quantisation")
    adc_bits: Optional[int] = _f(8, lo=2, hi=24, doc="output ADC bits; null = no output quantisation")
    inp_bound: float = _f(1.0, lo=0.0, hi=1e3, lo_open=True)
    out_bound: float = _f(10.0, lo=0.0, hi=1e6, lo_open=True)
    out_noise: float = _f(0.04, lo=0.0, hi=10.0, doc="output noise std, normalised units")
    noise_management: str = _f("abs_max", choices=("none", "abs_max", "max"))
    bound_management: str = _f("none", choices=("none", "iterative"))


@dataclass
class MappingSpec:
    """Weight-to-tile mapping (AIHWKit ``MappingParameter``)."""

    max_input_size: int = _f(512, lo=0, hi=1 << 20, doc="rows per tile; 0 = no split")
    max_output_size: int = _f(512, lo=0, hi=1 << 20, doc="columns per tile; 0 = no split")
    weight_scaling_omega: float = _f(1.0, lo=0.0, hi=1e3, doc="tile abs-max after digital scaling; 0 = off")
    weight_scaling_columnwise: bool = _f(True, doc="one digital scale per output channel")


@dataclass
class TileSpec:
    backend: str = _f("torch", choices=("torch", "cpp"),
                      doc="torch = TorchInferenceRPUConfig, cpp = InferenceRPUConfig")


@dataclass
class TrainingSpec:
    noise_std: Optional[float] = _f(None, lo=0.0, hi=10.0,
                                    doc="HWA weight-noise std relative to layer abs-max; derived for some models")


@dataclass
class WriteVerifySpec:
    """Program-and-verify loop and its cost per device operation."""

    tolerance: float = _f(required=True, lo=0.0, hi=1.0, lo_open=True,
                          doc="accept |read - target| <= tolerance * unit range")
    max_iterations: int = _f(required=True, lo=1, hi=10000, doc="max program pulses per device")
    verify_read_noise: float = _f(required=True, lo=0.0, hi=1.0, doc="verify-read std, fraction of unit range")
    t_pulse: float = _f(required=True, lo=0.0, hi=1.0, doc="s per program pulse (one device)")
    t_read: float = _f(required=True, lo=0.0, hi=1.0, doc="s per verify read (one device)")
    e_pulse: float = _f(required=True, lo=0.0, hi=1e-3, doc="J per program pulse (one device)")
    e_read: float = _f(required=True, lo=0.0, hi=1e-3, doc="J per verify read (one device)")
    devices_per_weight: int = _f(required=True, lo=1, hi=64, doc="devices that store one weight")


@dataclass
class PresetSpec:
    """One device preset: what a YAML file in ``device_presets/`` holds."""

    name: str = _f(required=True, max_len=100)
    description: str = _f("", max_len=2000)
    noise: Any = _f(required=True)  # one of NOISE_MODELS, chosen by noise.model
    periphery: PeripherySpec = _section(PeripherySpec)
    mapping: MappingSpec = _section(MappingSpec)
    tile: TileSpec = _section(TileSpec)
    drift_compensation: str = _f("none", choices=("none", "global", "global_exact", "per_column"))
    training: TrainingSpec = _section(TrainingSpec)
    write_verify: WriteVerifySpec = _section(WriteVerifySpec)


# ---------------------------------------------------------------------------------------------- validation


def _range_text(meta: dict, key: str) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    lo, hi = meta.get("lo"), meta.get("hi")
    parts = []
    if lo is not None:
        parts.append(f"{lo:g} {'<' if meta.get('lo_open') else '<='} ")
    parts.append(key.rsplit(".", 1)[-1])
    if hi is not None:
        parts.append(f" {'<' if meta.get('hi_open') else '<='} {hi:g}")
    return "".join(parts)


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


_YAML11_EXP = re.compile(r"^[+-]?\d+(\.\d*)?[eE][+-]?\d+$")


def _check_value(value: Any, tp: Any, meta: dict, key: str, src: str) -> Any:
    base, optional = _unwrap_optional(tp)
    rng = _range_text(meta, key)
    constrained = meta.get("choices") or meta.get("lo") is not None or meta.get("hi") is not None
    allowed = f" (allowed: {rng})" if constrained else ""
    shown = short_repr(value)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{src}: {key} is null but must be {_type_name(base)}{allowed}; fix: give it a value")
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: {key} = {shown} has the wrong type ({type(value).__name__}); "
                              f"fix: write true or false (no quotes)")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{src}: {key} = {shown} has the wrong type ({type(value).__name__}); "
                              f"fix: write an integer without quotes{allowed}")
        value = int(value)
    elif base is float:
        if isinstance(value, str) and _YAML11_EXP.match(value):  # PyYAML reads 1e-9 (no dot) as a string
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{src}: {key} = {shown} has the wrong type ({type(value).__name__}); "
                              f"fix: write a number{allowed}")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float range (e.g. 400 digits)
            raise ConfigError(f"{src}: {key} = {shown} is too large to be a number here{allowed}; "
                              f"fix: set {key} to a value in that range") from None
        if not math.isfinite(value):
            raise ConfigError(f"{src}: {key} = {short_repr(value)} is not finite; fix: write a finite number{allowed}")
    elif base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{src}: {key} = {shown} has the wrong type ({type(value).__name__}); "
                              f"fix: write a string{allowed}")
        max_len = meta.get("max_len")
        if max_len is not None and len(value) > max_len:
            raise ConfigError(f"{src}: {key} is {len(value):,} characters long (allowed: at most {max_len}); "
                              f"fix: shorten it")
    choices = meta.get("choices")
    if choices:
        norm = value.lower() if isinstance(value, str) else value
        if norm not in choices:
            raise ConfigError(f"{src}: {key} = {short_repr(value)} is not allowed (allowed: {rng}); "
                              "fix: use one of those")
        return norm
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)) or \
            hi is not None and (value > hi or (meta.get("hi_open") and value == hi)):
        raise ConfigError(f"{src}: {key} = {short_repr(value)} is out of range (allowed: {rng}); "
                          f"fix: set {key} to a value in that range")
    return value


def _unknown_key(key: str, valid: list[str], prefix: str, src: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
    if prefix == "noise.":
        owners = [m for m, cls in NOISE_MODELS.items() if key in {f.name for f in fields(cls)}]
        if owners:
            hint = f"it belongs to noise.model {' / '.join(repr(o) for o in owners)}; "
    return ConfigError(f"{src}: unknown key {short_repr(prefix + key)} in {where}; {hint}"
                       f"valid keys: {', '.join(sorted(valid))}")


def _build(cls: type, data: Any, src: str, prefix: str) -> Any:
    where = f"section {prefix[:-1]!r}" if prefix else "the preset"
    if cls in NOISE_MODELS.values():
        where += f" for noise.model {cls.model!r}"
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: {prefix[:-1] or 'preset'} must be a mapping (key: value lines), "
                          f"got {type(data).__name__}; fix the YAML structure")
    hints = typing.get_type_hints(cls)
    flds = {f.name: f for f in fields(cls) if f.init}
    for key in data:
        if key not in flds:
            raise _unknown_key(str(key), list(flds), prefix, src, where)
    kwargs: dict[str, Any] = {}
    for name, f in flds.items():
        key = prefix + name
        if name not in data:
            if f.metadata.get("required"):
                raise ConfigError(f"{src}: missing key {key!r} ({f.metadata.get('doc') or 'required'}); add it "
                                  f"(allowed: {_range_text(dict(f.metadata), key)})")
            continue
        value = data[name]
        if name == "noise" and cls is PresetSpec:
            kwargs[name] = _build_noise(value, src)
        elif f.metadata.get("section"):
            kwargs[name] = _build(hints[name], value if value is not None else {}, src, key + ".")
        else:
            kwargs[name] = _check_value(value, hints[name], dict(f.metadata), key, src)
    return cls(**kwargs)


def _build_noise(data: Any, src: str) -> NoiseSpec:
    if not isinstance(data, dict) or "model" not in data:
        raise ConfigError(f"{src}: section 'noise' needs a key 'model' (one of {', '.join(NOISE_MODELS)}); add it")
    model = data["model"]
    if not isinstance(model, str) or model not in NOISE_MODELS:
        close = difflib.get_close_matches(short_repr(model), list(NOISE_MODELS), n=1, cutoff=0.4)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{src}: noise.model = {short_repr(model)} is not a known device model; {hint}"
                          f"allowed: one of {', '.join(NOISE_MODELS)}")
    cls = NOISE_MODELS[model]
    return _build(cls, data, src, "noise.")


def build_preset(data: Any, src: str) -> PresetSpec:
    """Validate a raw mapping (from YAML plus overrides) into a :class:`PresetSpec`."""
    spec = _build(PresetSpec, data, src, "")
    _cross_checks(spec, src)
    return spec


def nvcim_std_factor(weight_bits: int, device_bits: int) -> float:
    r"""Per-weight std / (sigma * max|W|) for ``weight_bits`` sliced over ``weight_bits/device_bits`` devices.

    Device i (significance :math:`L^i`, :math:`L = 2^{b_d}`) gets noise :math:`\sigma (L-1)` in its level
    units; the weight is :math:`\max|W| \sum_i L^i d_i / (L^n - 1)`, so
    :math:`\mathrm{std} = \sigma \max|W| \sqrt{\sum_i L^{2i}} / \sum_i L^i` (8/2 bits: sqrt(4369)/85 = 0.7776).
    """
    n = weight_bits // device_bits
    levels = 2**device_bits
    return math.sqrt(sum(levels ** (2 * i) for i in range(n))) / sum(levels**i for i in range(n))


def _cross_checks(spec: PresetSpec, src: str) -> None:
    noise = spec.noise
    derived = derived_training_noise_std(noise)
    if derived is not None and spec.training.noise_std is not None:
        raise ConfigError(f"{src}: training.noise_std = {spec.training.noise_std!r} is set, but for model "
                          f"{noise.model!r} it is derived from the noise model ({derived:.4g}); remove the key "
                          f"(or override training.noise_std=None)")
    if derived is None and spec.training.noise_std is None:
        raise ConfigError(f"{src}: missing key 'training.noise_std' (HWA weight-noise std relative to layer "
                          f"abs-max) for model {noise.model!r}; add it (allowed: 0 <= noise_std <= 10)")
    if isinstance(noise, NVCIMGaussianNoise) and noise.weight_bits % noise.device_bits:
        raise ConfigError(f"{src}: noise.weight_bits = {noise.weight_bits} is not a multiple of noise.device_bits "
                          f"= {noise.device_bits}; choose bits so that weight_bits / device_bits is an integer")
    if isinstance(noise, ReRamCMONoise) and noise.g_min >= noise.g_max:
        raise ConfigError(f"{src}: noise.g_min = {noise.g_min} must be below noise.g_max = {noise.g_max}; "
                          f"fix one of them")
    expected = model_devices_per_weight(noise)
    got = spec.write_verify.devices_per_weight
    if expected is not None and got != expected:
        raise ConfigError(f"{src}: write_verify.devices_per_weight = {got} does not match model {noise.model!r}, "
                          f"which stores a weight on {expected} device(s); set it to {expected}")


def derived_training_noise_std(noise: NoiseSpec) -> float | None:
    """Training noise the model itself defines (relative to layer abs-max), or None if the preset must say."""
    if isinstance(noise, NVCIMGaussianNoise):
        return nvcim_std_factor(noise.weight_bits, noise.device_bits) * noise.sigma
    if isinstance(noise, IdealNoise):
        return 0.0
    return None


def model_devices_per_weight(noise: NoiseSpec) -> int | None:
    """Devices that hold one weight in the model (None: not fixed by the model)."""
    if isinstance(noise, PCMNoise):
        return 2  # SinglePairConductanceConverter: g+ and g-
    if isinstance(noise, ReRamCMONoise):
        return 1  # SingleDeviceConductanceConverter
    if isinstance(noise, NVCIMGaussianNoise):
        return noise.weight_bits // noise.device_bits
    return None


def spec_fields() -> list[tuple[str, Any, Any]]:
    """(dotted key, type hint, dataclass field) of every leaf a preset may set, noise fields of all models."""
    out: list[tuple[str, Any, Any]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.metadata.get("section"):
                walk(hints[f.name], prefix + f.name + ".")
            elif f.name == "noise" and cls is PresetSpec:
                for m in NOISE_MODELS.values():
                    walk(m, "noise.")
            else:
                out.append((prefix + f.name, hints[f.name], f))

    walk(PresetSpec, "")
    return out


def valid_keys() -> list[str]:
    """Every dotted key a preset may set (noise keys of all models), for messages and docs."""
    return sorted({key for key, _, _ in spec_fields()})


__all__ = [
    "PCMNoise", "ReRamCMONoise", "NVCIMGaussianNoise", "IdealNoise", "NOISE_MODELS", "NoiseSpec",
    "PeripherySpec", "MappingSpec", "TileSpec", "TrainingSpec", "WriteVerifySpec", "PresetSpec",
    "build_preset", "nvcim_std_factor", "derived_training_noise_std", "model_devices_per_weight", "valid_keys",
    "spec_fields",
]
