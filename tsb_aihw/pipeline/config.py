"""Study configuration: one nested dataclass tree, loadable from YAML, recorded in every results file.

Every field's allowed range or choices sits in its ``field(metadata=...)`` (see :func:`_f`), so adding a key
is one line: the loader checks type, range and choices and names file, key, value and allowed range on error.
``StudyConfig.validate`` adds the checks that span fields or need a registry (preset, model and dataset
names, drift times, device), so a bad config fails in a second, before any training.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.utils.yamlfile import load_yaml_file

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
SELECTION_METHODS = ("random", "magnitude", "second_derivative")  # tsb_aihw.baselines.selective_verify.METHODS
BLOCK_SITES = ("conv", "stage", "all")  # insert_tsb(where=...) choices a config can name
SEED_MAX = 2**32 - 1  # numpy and the data splits take seeds in [0, 2**32)


def _f(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, choices: tuple | None = None, what: str | None = None, why: str | None = None, factory: Any = None) -> Any:
    """A config field with its allowed range (``lo``/``hi``, ``lo_open`` for a strict lower bound) or choices
    and, optionally, why (shown in the error); for lists the range applies to every item."""
    meta = {k: v for k, v in dict(lo=lo, hi=hi, choices=choices, what=what, why=why).items() if v is not None}
    if lo_open:
        meta["lo_open"] = True
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = "mnist5k"
    root: str | None = None
    download: bool = False
    batch_size: int = _f(128, lo=1)
    eval_batch_size: int = _f(500, lo=1)
    eval_limit: int | None = _f(None, lo=1)  # evaluate on the first N test images (None = all)


@dataclass
class ModelConfig:
    name: str = "lenet3"
    width: float = _f(1.0, lo=0.0, lo_open=True, hi=64.0)


@dataclass
class BackboneConfig:
    full_epochs: int = _f(30, lo=1)  # (b): noise-injection training to convergence
    early_epochs: int = _f(6, lo=1)  # TSB backbone: "early convergence" budget
    lr: float = _f(1e-3, lo=0.0, lo_open=True, hi=10.0)
    noise_std: float | None = _f(None, lo=0.0, hi=10.0)  # None: the preset's training_noise_std


@dataclass
class BlockConfig:
    k: Union[int, str] = "auto"
    where: str = _f("conv", choices=BLOCK_SITES, what="insertion rule")
    residual: bool = True
    epochs: int = _f(8, lo=1)
    lr: float = _f(5e-3, lo=0.0, lo_open=True, hi=10.0)
    read_time: float = _f(0.0, lo=0.0)  # seconds after programming at which the chip's weights are read back
    n_reads: int = _f(1, lo=1)  # read-backs averaged (reduces read noise)


@dataclass
class SelectiveConfig:
    methods: list[str] = _f(choices=SELECTION_METHODS, what="selection method",
                            factory=lambda: ["random", "magnitude", "second_derivative"])
    fraction_multipliers: list[float] = _f(lo=0.0, lo_open=True, factory=lambda: [1.0, 10.0])  # x TSB's fraction
    extra_fractions: list[float] = _f(lo=0.0, lo_open=True, hi=1.0, factory=list)  # absolute fractions (curve)


@dataclass
class StudyConfig:
    preset: str = "nvcim-gaussian"
    preset_overrides: dict[str, Any] = field(default_factory=dict)
    times: list[Union[float, str]] = field(default_factory=lambda: [0.0])
    chips: int = _f(20, lo=2, why="need at least 2 chips for a spread and a 95% CI (20+ for stable means)")
    seed: int = _f(0, lo=0, hi=SEED_MAX)
    device: str = "cpu"
    methods: list[str] = _f(choices=METHODS, what="method", factory=lambda: list(METHODS))
    bn_recalibration_batches: int = _f(20, lo=1)  # training batches streamed through each chip (BN stats)
    fast_eval: bool | None = None  # chip evaluation on tsb_aihw.analog.fast_eval; None: TSB_AIHW_FAST_EVAL, else on
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    block: BlockConfig = field(default_factory=BlockConfig)
    selective: SelectiveConfig = field(default_factory=SelectiveConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "StudyConfig":
        """Re-check every field (the CLI may have overridden some) and the names the study will look up."""
        _check_tree(self, "")
        if not self.times:
            raise ConfigError("times is empty: give at least one time, e.g. [0] or ['1s', '1d']")
        if not self.methods:
            raise ConfigError(f"methods is empty: give at least one of {', '.join(METHODS)}")
        if self.backbone.early_epochs > self.backbone.full_epochs:
            raise ConfigError(f"backbone.early_epochs ({self.backbone.early_epochs}) > full_epochs "
                              f"({self.backbone.full_epochs}): early convergence must not train longer")
        k = self.block.k
        if not (k == "auto" or (isinstance(k, int) and not isinstance(k, bool) and k >= 1)):
            raise ConfigError(f"block.k = {k!r}: must be 'auto' or an integer >= 1 (channels of the shared block)")
        if "selective_verify" in self.methods and not self.selective.methods:
            raise ConfigError(f"selective.methods is empty but methods has selective_verify; give at least one "
                              f"of {', '.join(SELECTION_METHODS)} or drop selective_verify")
        self._check_names()
        return self

    def _check_names(self) -> None:
        """Preset, model, dataset, times and device resolve now, not after an hour of training."""
        from tsb_aihw.data.registry import resolve_source
        from tsb_aihw.devices import load_preset
        from tsb_aihw.evaluation.times import parse_time
        from tsb_aihw.models.registry import list_models
        from tsb_aihw.utils.device import resolve_device

        for key, check in (("preset", lambda: load_preset(self.preset, **self.preset_overrides)),
                           ("data.name", lambda: resolve_source(self.data.name)),
                           ("device", lambda: resolve_device(self.device))):
            try:
                check()
            except TSBError as exc:  # a DataError for the dataset name is still a config problem here
                raise ConfigError(f"{key}: {exc}") from None
        if self.model.name.lower() not in list_models():
            close = difflib.get_close_matches(self.model.name.lower(), list_models(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"model.name = {self.model.name!r} is not a registered model{hint}; "
                              f"valid: {', '.join(list_models())}")
        for i, t in enumerate(self.times):
            try:
                parse_time(t)
            except ConfigError as exc:
                raise ConfigError(f"times[{i}]: {exc}") from None


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _allowed(meta: dict[str, Any]) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(map(str, meta["choices"]))
    lo, hi = meta.get("lo"), meta.get("hi")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if meta.get('lo_open') else '>='} {_num(lo)}")
    if hi is not None:
        parts.append(f"<= {_num(hi)}")
    return " and ".join(parts)


def _check_value(value: Any, meta: dict[str, Any], where: str) -> None:
    """Range/choices of one value (items of a list one by one); ConfigError with key, value, allowed range."""
    if not meta or value is None:
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_value(v, meta, f"{where}[{i}]")
        return
    if "choices" in meta:
        if value not in meta["choices"]:
            close = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            what = meta.get("what", "value")
            raise ConfigError(f"{where} = {value!r}: unknown {what}{hint}; allowed: {_allowed(meta)}")
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} = {value!r} is not finite; allowed: {_allowed(meta)}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and (value < lo or (meta.get("lo_open") and value == lo))) or (hi is not None and value > hi):
        why = f" ({meta['why']})" if "why" in meta else ""
        raise ConfigError(f"{where} = {value!r} is out of range; allowed: {_allowed(meta)}{why}")


def _check_tree(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        where = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_tree(value, where + ".")
        else:
            _check_value(value, dict(f.metadata), where)


def _type_text(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        text = " or ".join(_type_text(a) for a in args)
        return text + (" or null" if len(args) < len(get_args(hint)) else "")
    if get_origin(hint) is list:
        (item,) = get_args(hint) or (Any,)
        return f"a list of {_type_text(item)}"
    names = {float: "float (a number)", bool: "bool (true or false)"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Build dataclass fields from YAML values, with errors naming the key, the value and the expected type."""
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping (key: value lines), got {value!r}")
        return _build(hint, value, where)
    if origin in (Union, types.UnionType):  # Union[a, b] and a | b
        for arg in get_args(hint):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_type_text(hint)}, got {type(value).__name__} {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, e.g. [a, b], got {type(value).__name__} {value!r}")
        (item,) = get_args(hint) or (Any,)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return {str(k): v for k, v in value.items()}
    if hint is Any:
        return value
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {_type_text(hint)}, got boolean {value!r}")
    if hint is float and isinstance(value, int):
        return float(value)
    if hint is float and isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {_type_text(hint)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    flds = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in flds:
            close = difflib.get_close_matches(str(key), list(flds), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where or 'config'}: unknown key {key!r}{hint}; valid keys: {', '.join(flds)}")
        key_where = f"{where}.{key}" if where else key
        kwargs[key] = _coerce(value, hints[key], key_where)
        _check_value(kwargs[key], dict(flds[key].metadata), key_where)
    return cls(**kwargs)


def study_config_from_dict(data: dict[str, Any], source: str = "<dict>") -> StudyConfig:
    """Build and validate a config; every error message starts with ``source`` (the file name)."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return _build(StudyConfig, data or {}, "").validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_study_config(path: str | Path) -> StudyConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass --config with a YAML file (see configs/)")
    return study_config_from_dict(load_yaml_file(p, "study config"), str(p))
