"""Study configuration: one nested dataclass tree, loadable from YAML, recorded in every results file."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from tsb_aihw.errors import ConfigError

METHODS = (
    "backbone_early",  # (a) the early-convergence backbone as trained, one-shot
    "full_noise_injection",  # (b) noise-injection training to full convergence, one-shot (the reference)
    "full_verify",  # (c) (b) with every weight write-verified
    "selective_verify",  # (d) (b) with SWIM-style selected weights write-verified
    "bn_recalibration",  # (e) (b) with per-chip BN recalibration (digital), no block
    "tsb_clean",  # (f) block trained on the clean early backbone (control: more training, no chip data)
    "tsb",  # the TSB flow: early backbone, chip-specific block, only the block verified
    "tsb_generic",  # ablation: block trained on freshly drawn noise (no chip read-back)
)


@dataclass
class DataConfig:
    name: str = "mnist5k"
    root: str | None = None
    download: bool = False
    batch_size: int = 128
    eval_batch_size: int = 500
    eval_limit: int | None = None  # evaluate on the first N test images (None = all)


@dataclass
class ModelConfig:
    name: str = "lenet3"
    width: float = 1.0


@dataclass
class BackboneConfig:
    full_epochs: int = 30  # (b): noise-injection training to convergence
    early_epochs: int = 6  # TSB backbone: "early convergence" budget
    lr: float = 1e-3
    noise_std: float | None = None  # None: the preset's training_noise_std


@dataclass
class BlockConfig:
    k: Union[int, str] = "auto"
    where: str = "conv"
    residual: bool = True
    epochs: int = 8
    lr: float = 5e-3
    read_time: float = 0.0  # seconds after programming at which the chip's weights are read back
    n_reads: int = 1  # read-backs averaged (reduces read noise)


@dataclass
class SelectiveConfig:
    methods: list[str] = field(default_factory=lambda: ["random", "magnitude", "second_derivative"])
    fraction_multipliers: list[float] = field(default_factory=lambda: [1.0, 10.0])  # x TSB's verified fraction
    extra_fractions: list[float] = field(default_factory=list)  # absolute fractions (for the curve)


@dataclass
class StudyConfig:
    preset: str = "nvcim-gaussian"
    preset_overrides: dict[str, Any] = field(default_factory=dict)
    times: list[Union[float, str]] = field(default_factory=lambda: [0.0])
    chips: int = 20
    seed: int = 0
    device: str = "cpu"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    bn_recalibration_batches: int = 20  # training batches streamed through each chip to re-estimate BN stats
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    selective: SelectiveConfig = field(default_factory=SelectiveConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "StudyConfig":
        if self.chips < 2:
            raise ConfigError(f"chips = {self.chips}: need at least 2 chips for a spread and a 95% CI "
                              "(20+ for stable means)")
        if not self.times:
            raise ConfigError("times is empty: give at least one time, e.g. [0] or ['1s', '1d']")
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
        for name, value in (("backbone.full_epochs", self.backbone.full_epochs),
                            ("backbone.early_epochs", self.backbone.early_epochs),
                            ("block.epochs", self.block.epochs), ("block.n_reads", self.block.n_reads),
                            ("bn_recalibration_batches", self.bn_recalibration_batches)):
            if value < 1:
                raise ConfigError(f"{name} = {value}: must be >= 1")
        if self.backbone.early_epochs > self.backbone.full_epochs:
            raise ConfigError(f"backbone.early_epochs ({self.backbone.early_epochs}) > full_epochs "
                              f"({self.backbone.full_epochs}): early convergence must not train longer")
        return self


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Build dataclass fields from YAML values, with errors naming the key, the value and the expected type."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return _build(hint, value, where)
    if origin is Union:
        errors = []
        for arg in get_args(hint):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: value {value!r} does not fit {hint}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got boolean {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(names)}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}" if where else key)
    return cls(**kwargs)


def study_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    try:
        return _build(StudyConfig, data or {}, "").validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_study_config(path: str | Path) -> StudyConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass --config with a YAML file (see configs/)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML ({exc}); fix the syntax") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    return study_config_from_dict(data or {}, str(p))
