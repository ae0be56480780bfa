"""The device-preset schema: nested dataclasses whose field metadata is the one range/choice table.

Every key a preset YAML may hold is a dataclass field below; its type hint gives the type, its metadata the
allowed range or choices and, for write-verify numbers, whether it must be given. The mechanism is the
project's one config schema (:mod:`tsb_aihw.utils.schema`); ``build_preset`` adds the cross-field checks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Union

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.schema import build, leaf_fields, section, variant
from tsb_aihw.utils.schema import spec as _f

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
    conductance_mapping: str = _f("single", choices=("single", "differential"),
                                  doc="single: one device per weight (AIHWKit); differential: a g+/g- pair "
                                      "around the window centre, which cancels the common relaxation shift")


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
    algorithm: str = _f("redraw", choices=("redraw", "incremental"),
                        doc="retry pulses: redraw = fresh one-shot draw; incremental = corrective step toward "
                            "the target (docs/devices.md section 3)")
    step_gain: float = _f(0.7, lo=0.0, hi=2.0, lo_open=True,
                          doc="incremental: mean step = step_gain * (target - verify read)")
    step_noise: float = _f(0.3, lo=0.0, hi=5.0, doc="incremental: step sd relative to the mean step size")
    step_noise_floor: float = _f(0.001, lo=0.0, hi=1.0,
                                 doc="incremental: size-independent step sd, fraction of unit range")
    asymmetry: str = _f("symmetric", choices=("symmetric", "pcm-asymmetric"),
                        doc="symmetric: a retry corrects up and down alike; pcm-asymmetric: conductance steps up "
                            "only (partial SET); a device read above tolerance is RESET to g_min and programmed "
                            "afresh (one RESET pulse, then a new sequence; docs/devices.md section 3)")


@dataclass
class ADCCalibrationSpec:
    """ADC output range set from calibration data after programming (tsb_aihw.analog.calibrate_adc)."""

    mode: str = _f("none", choices=("none", "per_tile", "per_layer"),
                   doc="none = the periphery's fixed out_bound; per_tile/per_layer = percentile of |output|")
    percentile: float = _f(99.9, lo=50.0, hi=100.0, doc="percentile of |pre-ADC output| the bound covers")
    samples: int = _f(256, lo=1, hi=1 << 20, doc="calibration images (taken from the training split)")


@dataclass
class CostSpec:
    """How :func:`tsb_aihw.analog.inference_cost` prices the chip (no effect on the simulated physics).

    The defaults reproduce the hand-set constants' numbers exactly; the field model (``pip install
    '.[cost]'``, Python >= 3.12) reads the technology node and the read voltage too.
    """

    tech_node_nm: float = _f(32.0, lo=7.0, hi=130.0,
                             doc="CMOS node of the periphery (nm); NeuroSim tabulates 7-130 nm")
    columns_per_adc: int = _f(1, lo=1, hi=4096, doc="columns that share one ADC (converted one after another)")
    mvm_read_time: Optional[float] = _f(None, lo=0.0, hi=1.0, lo_open=True,
                                        doc="s, array integration time of one MVM at full-scale input; "
                                            "null = write_verify.t_read")
    read_voltage: float = _f(0.2, lo=0.0, hi=5.0, lo_open=True,
                             doc="V, full-scale read voltage across a cell (field model's cell file)")


@dataclass
class PresetSpec:
    """One device preset: what a YAML file in ``device_presets/`` holds."""

    name: str = _f(required=True, max_len=100)
    description: str = _f("", max_len=2000)
    noise: NoiseSpec = variant(NOISE_MODELS, tag="model", default="ideal", required=True)
    periphery: PeripherySpec = section(PeripherySpec)
    mapping: MappingSpec = section(MappingSpec)
    tile: TileSpec = section(TileSpec)
    drift_compensation: str = _f("none", choices=("none", "global", "global_exact", "per_column", "global_random"))
    training: TrainingSpec = section(TrainingSpec)
    write_verify: WriteVerifySpec = section(WriteVerifySpec)
    adc_calibration: ADCCalibrationSpec = section(ADCCalibrationSpec)
    cost: CostSpec = section(CostSpec)


# ---------------------------------------------------------------------------------------------- validation


def build_preset(data: Any, src: str) -> PresetSpec:
    """Validate a raw mapping (from YAML plus overrides) into a :class:`PresetSpec`."""
    spec = build(PresetSpec, data, src)
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
        return 2 if noise.conductance_mapping == "differential" else 1  # pair / SingleDeviceConductanceConverter
    if isinstance(noise, NVCIMGaussianNoise):
        return noise.weight_bits // noise.device_bits
    return None


def spec_fields() -> list[tuple[str, Any, Any]]:
    """(dotted key, type hint, dataclass field) of every leaf a preset may set, noise fields of all models."""
    return leaf_fields(PresetSpec)


def valid_keys() -> list[str]:
    """Every dotted key a preset may set (noise keys of all models), for messages and docs."""
    return sorted({key for key, _, _ in spec_fields()})


__all__ = [
    "PCMNoise", "ReRamCMONoise", "NVCIMGaussianNoise", "IdealNoise", "NOISE_MODELS", "NoiseSpec",
    "PeripherySpec", "MappingSpec", "TileSpec", "TrainingSpec", "WriteVerifySpec", "ADCCalibrationSpec", "CostSpec",
    "PresetSpec",
    "build_preset", "nvcim_std_factor", "derived_training_noise_std", "model_devices_per_weight", "valid_keys",
    "spec_fields",
]
