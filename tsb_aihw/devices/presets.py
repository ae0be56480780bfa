"""Device presets: YAML files in ``<repo>/device_presets/`` -> validated dataclass tree -> AIHWKit RPU configs."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from tsb_aihw.devices.schema import (
    ADCCalibrationSpec,
    CostSpec,
    IdealNoise,
    MappingSpec,
    NoiseSpec,
    NVCIMGaussianNoise,
    PCMNoise,
    PeripherySpec,
    PresetSpec,
    ReRamCMONoise,
    TileSpec,
    TrainingSpec,
    WriteVerifySpec,
    build_preset,
    derived_training_noise_std,
    nvcim_std_factor,
)
from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject, JsonValue
from tsb_aihw.utils.schema import set_dotted
from tsb_aihw.utils.text import short_repr
from tsb_aihw.utils.yamlfile import check_yaml_path, load_yaml_file

#: ``ReRamCMONoiseModel`` drift/read fits use ln(t) (t in s): below 1 s they extrapolate (and are NaN
#: below ~1 us), so drift times in (0, 1) s are rejected.
CMO_MIN_DRIFT_TIME = 1.0


def presets_dir() -> Path:
    """``<repo>/device_presets``, located relative to the installed (editable) package."""
    path = Path(__file__).resolve().parents[2] / "device_presets"  # the repository beside the package
    if not path.is_dir():
        raise ConfigError(f"device preset directory {path} is missing; tsb_aihw must be installed from a repo "
                          f"checkout (pip install -e .) so that device_presets/ sits next to the package, or "
                          f"pass a YAML path to load_preset")
    return path


def list_presets() -> list[str]:
    """Names of the presets shipped in ``device_presets/`` (file stems), sorted."""
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


@dataclass
class DevicePreset:
    """A validated device preset. Fields mirror the YAML sections; see ``docs/devices.md``."""

    name: str
    description: str
    noise: NoiseSpec
    periphery: PeripherySpec
    mapping: MappingSpec
    tile: TileSpec
    drift_compensation: str
    training: TrainingSpec
    write_verify: WriteVerifySpec
    adc_calibration: ADCCalibrationSpec = dataclasses.field(default_factory=ADCCalibrationSpec)
    cost: CostSpec = dataclasses.field(default_factory=CostSpec)
    source: str = ""

    # -- derived ---------------------------------------------------------------------------------------
    @property
    def training_noise_std(self) -> float:
        """Std of additive Gaussian weight noise, relative to each layer's abs-max, for HWA training."""
        derived = derived_training_noise_std(self.noise)
        std = derived if derived is not None else self.training.noise_std
        assert std is not None  # build_preset requires training.noise_std when the model derives none
        return float(std)

    @property
    def drifts(self) -> bool:
        """Whether the programmed weights change with time (drift or accumulated read noise)."""
        if isinstance(self.noise, (PCMNoise, ReRamCMONoise)):
            return self.noise.drift_scale > 0 or self.noise.read_noise_scale > 0
        return False

    @property
    def model(self) -> str:
        return self.noise.model

    # -- AIHWKit objects -------------------------------------------------------------------------------
    def noise_model(self) -> Any:
        """A fresh instance of the device model itself (no write-verify wrapper)."""
        n = self.noise
        if isinstance(n, PCMNoise):
            from aihwkit.inference import PCMLikeNoiseModel

            # pass no prog_coeff_g_max_reference: with prog_coeff it raises (docs/notes/aihwkit-1.1-facts.md section 3)
            return PCMLikeNoiseModel(g_max=n.g_max, t_0=n.t_0, t_read=n.t_read,
                                     prog_noise_scale=n.prog_noise_scale,
                                     read_noise_scale=n.read_noise_scale, drift_scale=n.drift_scale)
        if isinstance(n, ReRamCMONoise):
            from aihwkit.inference import ReRamCMONoiseModel

            model = ReRamCMONoiseModel(g_max=n.g_max, g_min=n.g_min, prog_noise_scale=n.prog_noise_scale,
                                       read_noise_scale=n.read_noise_scale, drift_scale=n.drift_scale,
                                       acceptance_range=n.acceptance_range)
            # AIHWKit silently falls back to the smallest key (0.2 %) for any other value (e.g. 2e-2)
            if model.acceptance_range != n.acceptance_range:
                raise ConfigError(f"{self.source}: AIHWKit ReRamCMONoiseModel replaced acceptance_range "
                                  f"{n.acceptance_range!r} by {model.acceptance_range!r}; use 0.2 or 2 (percent)")
            if n.conductance_mapping == "differential":
                from tsb_aihw.devices.noise.converters import DifferentialConductanceConverter

                # the model's own fits are in uS of one device and clip to [g_min, g_max]: unchanged
                model.g_converter = DifferentialConductanceConverter(g_max=n.g_max, g_min=n.g_min)
            return model
        if isinstance(n, NVCIMGaussianNoise):
            from tsb_aihw.devices.noise import NVCIMGaussianNoiseModel

            return NVCIMGaussianNoiseModel(sigma=n.sigma, weight_bits=n.weight_bits, device_bits=n.device_bits)
        if isinstance(n, IdealNoise):
            from tsb_aihw.devices.noise import IdealNoiseModel

            return IdealNoiseModel()
        raise ConfigError(f"{self.source}: no builder for noise.model {n.model!r}")  # pragma: no cover

    def rpu_config(self, verified: bool) -> Any:
        """A fresh AIHWKit inference RPU config; its noise model write-verifies all cells iff ``verified``.

        One-shot (``verified=False``) and verified configs differ only in the noise model's
        ``default_verified`` flag; per-tile masks (``set_verify_mask``) override it.
        """
        from aihwkit.simulator.configs import InferenceRPUConfig, TorchInferenceRPUConfig
        from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType

        from tsb_aihw.devices.noise import WriteVerifyNoiseModel

        cfg = TorchInferenceRPUConfig() if self.tile.backend == "torch" else InferenceRPUConfig()
        p, io = self.periphery, cfg.forward
        io.is_perfect = p.is_perfect
        io.inp_res = 1.0 / (2**p.dac_bits - 2) if p.dac_bits else -1.0
        io.out_res = 1.0 / (2**p.adc_bits - 2) if p.adc_bits else -1.0
        io.inp_bound = p.inp_bound
        io.out_bound = p.out_bound
        io.out_noise = p.out_noise
        io.noise_management = {"none": NoiseManagementType.NONE, "abs_max": NoiseManagementType.ABS_MAX,
                               "max": NoiseManagementType.MAX}[p.noise_management]
        io.bound_management = {"none": BoundManagementType.NONE,
                               "iterative": BoundManagementType.ITERATIVE}[p.bound_management]
        m = cfg.mapping
        m.digital_bias = True  # the torch tile requires it; keeps the weight matrix [out, in] on both backends
        m.max_input_size = self.mapping.max_input_size
        m.max_output_size = self.mapping.max_output_size
        m.weight_scaling_omega = self.mapping.weight_scaling_omega
        m.weight_scaling_columnwise = self.mapping.weight_scaling_columnwise
        cfg.noise_model = WriteVerifyNoiseModel(self.noise_model(), copy.deepcopy(self.write_verify),
                                                default_verified=verified, min_drift_time=self.min_drift_time)
        cfg.drift_compensation = _drift_compensation(self.drift_compensation)
        return cfg

    @property
    def min_drift_time(self) -> float:
        """Smallest drift time > 0 the device model is fitted for (s); 0 = any."""
        return CMO_MIN_DRIFT_TIME if isinstance(self.noise, ReRamCMONoise) else 0.0

    def check_times(self, seconds: list[float], what: str = "times") -> None:
        """Refuse drift times the device model is not fitted for, before anything is trained."""
        short = [t for t in seconds if 0 < t < self.min_drift_time]
        if short:
            raise ConfigError(f"{what} {short} are below {self.min_drift_time:g} s, where the {self.noise.model} "
                              f"model of preset {self.name!r} is not fitted; use 0 or times >= "
                              f"{self.min_drift_time:g}s")

    @property
    def identity(self) -> str:
        """Fingerprint of the preset's content (not its file name or description): every value that differs
        from the schema's default, so a schema that gains a field with a neutral default keeps identities.
        The ``cost`` section is left out: it prices the chip and changes no simulated number."""
        from tsb_aihw.utils.io import json_fingerprint
        from tsb_aihw.utils.schema import non_default_leaves

        spec = PresetSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PresetSpec)})
        return json_fingerprint({k: v for k, v in non_default_leaves(spec).items()
                                 if k != "description" and not k.startswith("cost.")})

    @property
    def folder_name(self) -> str:
        """Output folder of this preset: its name plus its content fingerprint, so two files with the same
        stem (or the same preset with other overrides) never share a folder."""
        return f"{self.name}-{self.identity[:8]}"

    # -- reporting -------------------------------------------------------------------------------------
    def to_dict(self) -> JsonObject:
        """Plain nested dict for results files: the preset plus derived values."""
        d = dataclasses.asdict(self)
        d["derived"] = {"training_noise_std": self.training_noise_std, "drifts": self.drifts}
        if isinstance(self.noise, NVCIMGaussianNoise):
            k = nvcim_std_factor(self.noise.weight_bits, self.noise.device_bits)
            d["derived"]["weight_std_over_absmax"] = k * self.noise.sigma
        return d

    def key_numbers(self) -> str:
        """One line of the numbers that set this device's error (for the CLI table)."""
        n = self.noise
        if isinstance(n, PCMNoise):
            c = (0.26348, 1.9650, -1.1731)  # AIHWKit's fit, uS at g_max = 25
            lo, hi = (c[0] * n.prog_noise_scale / 25.0, sum(c) * n.prog_noise_scale / 25.0)
            return (f"g_max {n.g_max:g}uS; prog sd {lo:.1%}-{hi:.1%} g_max; drift nu 0.049-0.1 "
                    f"x{n.drift_scale:g}; 1/f read x{n.read_noise_scale:g}")
        if isinstance(n, ReRamCMONoise):
            c0, c1 = (0.0112185391, 0.01129027418) if n.acceptance_range == 2.0 else (0.00081107, 0.00106879)
            lo, hi = ((c0 + c1 * g) * n.prog_noise_scale for g in (n.g_min, n.g_max))
            return (f"{n.conductance_mapping} g {n.g_min:g}-{n.g_max:g}uS; prog sd {lo:.2f}-{hi:.2f}uS "
                    f"(acceptance {n.acceptance_range:g}%); "
                    f"shift -0.089 ln(t) uS x{n.drift_scale:g}; read x{n.read_noise_scale:g}")
        if isinstance(n, NVCIMGaussianNoise):
            k = nvcim_std_factor(n.weight_bits, n.device_bits)
            return (f"sigma {n.sigma:g} -> weight sd {k * n.sigma:.4f} max|W| "
                    f"({n.weight_bits}b on {n.weight_bits // n.device_bits}x{n.device_bits}b devices)")
        return "exact weights"


def _drift_compensation(kind: str) -> Any:
    from aihwkit.inference.compensation.drift import (
        GlobalDriftCompensation,
        GlobalDriftCompensationWithExactReference,
        PerColumnDriftCompensation,
    )

    from tsb_aihw.devices.compensation import RandomReadoutGlobalDriftCompensation

    return {"none": None, "global": GlobalDriftCompensation(),
            "global_random": RandomReadoutGlobalDriftCompensation(),
            "global_exact": GlobalDriftCompensationWithExactReference(),
            "per_column": PerColumnDriftCompensation()}[kind]


# ---------------------------------------------------------------------------------------------- loading


def _resolve(name_or_path: str | Path) -> Path:
    if not isinstance(name_or_path, (str, Path)):
        raise ConfigError(f"a device preset is a name or a YAML path, got {type(name_or_path).__name__} "
                          f"{short_repr(name_or_path)}; use one of {', '.join(list_presets())}")
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        hint = f"give an existing YAML path or one of the shipped presets: {', '.join(list_presets())}"
        return check_yaml_path(candidate, "device preset", hint)
    names = list_presets()
    if text in names:
        return presets_dir() / f"{text}.yaml"
    raise ConfigError(f"unknown device preset {short_repr(text)}; valid names: {', '.join(names)} "
                      f"(a path to a preset YAML file also works)")


def _follow_mapping(raw: dict, overrides: Mapping[str, JsonValue]) -> None:
    """An override of ``noise.conductance_mapping`` alone also sets the devices per weight it implies."""
    if "noise.conductance_mapping" in overrides and "write_verify.devices_per_weight" not in overrides:
        wv = raw.get("write_verify")
        if isinstance(wv, dict) and "devices_per_weight" in wv:
            wv["devices_per_weight"] = 2 if overrides["noise.conductance_mapping"] == "differential" else 1


def _check_nvcim_layer_scale(spec: PresetSpec, src: str) -> None:
    """The NVCIM model's noise scale is max|W| of the whole layer; tiling or per-column scales would silently
    make it a per-tile or per-row maximum (the noise model sees one tile's normalised weights only)."""
    if not isinstance(spec.noise, NVCIMGaussianNoise):
        return
    m = spec.mapping
    bad = [f"mapping.{k} = {v!r}" for k, v in (("max_input_size", m.max_input_size),
                                                ("max_output_size", m.max_output_size),
                                                ("weight_scaling_columnwise", m.weight_scaling_columnwise))
           if v not in (0, False)]
    if bad:
        raise ConfigError(f"{src}: noise.model 'nvcim-gaussian' scales its noise by max|W| of the whole layer, but "
                          f"{', '.join(bad)} would make it per tile/per row; keep max_input_size = "
                          f"max_output_size = 0 and weight_scaling_columnwise = false")


def _check_overrides(overrides: Any, kw_overrides: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """One dict of dotted keys; a ConfigError (not a TypeError deep inside) for anything else."""
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"preset overrides must be a mapping of dotted keys to values, e.g. "
                          f"{{'noise.sigma': 0.3}}, got {type(overrides).__name__} {short_repr(overrides)}")
    out: dict[str, JsonValue] = {}
    for key, value in list((overrides or {}).items()) + [(k.replace("__", "."), v) for k, v in kw_overrides.items()]:
        if not isinstance(key, str):
            raise ConfigError(f"preset override key {short_repr(key)} has type {type(key).__name__}, not str; "
                              "use dotted keys such as 'noise.sigma'")
        out[key] = value
    return out


def load_preset(name_or_path: str | Path, overrides: Optional[Mapping[str, JsonValue]] = None,
                **kw_overrides: JsonValue) -> DevicePreset:
    """Load and validate a device preset.

    Args:
        name_or_path: a shipped preset name (see :func:`list_presets`) or a path to a YAML file.
        overrides: dotted keys, e.g. ``{"noise.sigma": 0.3, "periphery.adc_bits": 6}``.
        **kw_overrides: the same with ``__`` for nesting, e.g. ``noise__sigma=0.3``.

    Overriding ``noise.model`` starts the noise section from that model's defaults (plus other noise
    overrides), since the keys of one device model do not apply to another.
    """
    path = _resolve(name_or_path)
    raw = load_yaml_file(path, "device preset")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a preset must be a YAML mapping of sections, got {type(raw).__name__}")
    all_over = _check_overrides(overrides, kw_overrides)
    src = str(path)
    if all_over:
        shown = (k if k.isprintable() and len(k) <= 60 else short_repr(k, 60) for k in sorted(all_over))
        src = f"{path} (with overrides {', '.join(shown)})"
        if "noise.model" in all_over:
            raw["noise"] = {"model": all_over["noise.model"]}
        for key, value in all_over.items():
            set_dotted(raw, key, value, src)
        _follow_mapping(raw, all_over)
    spec: PresetSpec = build_preset(raw, src)
    _check_nvcim_layer_scale(spec, src)
    return DevicePreset(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(PresetSpec)}, source=src)
