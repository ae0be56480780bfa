"""Sweep axes: what one sweep varies, validated before anything is trained."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import PER_CHIP_BLOCK_KEYS
from tsb_aihw.records.sweep import AxisRecord
from tsb_aihw.utils.text import short_repr

KINDS = ("verified_fraction", "sigma", "adc_bits", "param", "presets", "block")
#: fixed methods drawn as points on the verified-fraction plot (each at its own verified fraction)
POINT_METHODS = ("tsb", "tsb_clean", "tsb_generic", "bn_recalibration", "backbone_early")
IO_KEYS = {"adc": "periphery.adc_bits", "dac": "periphery.dac_bits"}


def canonical_kind(kind: str) -> str:
    """``verified-fraction`` / ``adc-bits`` (CLI spelling) -> ``verified_fraction`` / ``adc_bits``."""
    k = str(kind).strip().lower().replace("-", "_")
    aliases = {"fraction": "verified_fraction", "verified": "verified_fraction", "adc": "adc_bits",
               "bits": "adc_bits", "preset": "presets", "time": "presets", "block_budget": "block"}
    k = aliases.get(k, k)
    if k not in KINDS:
        raise ConfigError(f"unknown sweep kind {kind!r}; valid: {', '.join(k.replace('_', '-') for k in KINDS)}")
    return k


@dataclass
class SweepAxis:
    """One sweep axis.

    Attributes:
        kind: one of ``KINDS``.
        values: fractions in [0, 1] (verified_fraction), numbers (sigma, adc_bits, param, block) or preset
            names/paths (presets).
        key: the preset key a ``param`` sweep sets (dotted, e.g. ``noise.prog_noise_scale``), or the per-chip
            block's budget field a ``block`` sweep sets (``block.calibration_images``, ``block.epochs``, ...).
        io: for ``adc_bits``: which converters get the value (``adc``, ``dac`` or both).
        rules: for ``verified_fraction``: selection rules of the selective write-verify curves (default: the
            config's ``selective.methods``).
        points: for ``verified_fraction``: fixed methods drawn as points (default: those of ``POINT_METHODS`` in
            the config's methods, at least ``tsb``).
        add_tsb_fraction: for ``verified_fraction``: also evaluate the curves at TSB's own verified fraction
            (the equal-budget comparison), unless a given value is within 2% of it.
    """

    kind: str
    values: list[Any]
    key: str | None = None
    io: list[str] = field(default_factory=lambda: ["adc", "dac"])
    rules: list[str] | None = None
    points: list[str] | None = None
    add_tsb_fraction: bool = True

    def __post_init__(self) -> None:
        self.kind = canonical_kind(self.kind)
        for name in ("io", "rules", "points"):  # "adc,dac" from YAML or a caller -> ["adc", "dac"]
            v = getattr(self, name)
            if isinstance(v, str):
                setattr(self, name, [x.strip() for x in v.split(",") if x.strip()])
        if isinstance(self.values, (str, int, float)):
            self.values = [self.values]
        self.values = list(self.values or [])
        if not self.values:
            raise ConfigError(f"sweep {self.kind}: no values given; pass e.g. --values "
                              f"{'0,0.01,0.1,1' if self.kind == 'verified_fraction' else '0.1,0.2,0.35'}")
        if self.kind == "presets":
            self.values = [str(v) for v in self.values]
        else:
            self.values = [_number(v, self.kind) for v in self.values]
        if len(set(map(str, self.values))) != len(self.values):
            raise ConfigError(f"sweep {self.kind}: repeated values in {self.values}; give each value once")
        if self.kind == "verified_fraction":
            bad = [v for v in self.values if not 0.0 <= v <= 1.0]
            if bad:
                raise ConfigError(f"verified fractions {bad} are outside [0, 1]; 0 = one-shot, 1 = full write-verify")
            self.values = sorted(float(v) for v in self.values)
        if self.kind == "adc_bits":
            bad = [v for v in self.values if v != int(v) or v < 2]
            if bad:  # the preset schema's minimum: a 1-bit converter has no step (1 / (2**b - 2))
                raise ConfigError(f"ADC/DAC bits {bad} must be integers >= 2, e.g. --values 4,6,8")
            self.values = [int(v) for v in self.values]
            unknown = [x for x in self.io if x not in IO_KEYS]
            if unknown or not self.io:
                raise ConfigError(f"io = {self.io}: choose adc, dac or both")
        if self.kind == "param" and not self.key:
            raise ConfigError("a param sweep needs the preset key it sets, e.g. key='noise.prog_noise_scale' "
                              "(CLI: --key noise.prog_noise_scale)")
        if self.kind == "block":
            name = str(self.key or "").strip().removeprefix("block.")
            if name not in PER_CHIP_BLOCK_KEYS:
                given = f"key {self.key!r} is not one" if self.key else "no key given"
                raise ConfigError(f"a block sweep sets one field of the per-chip block (its budget, or k); {given}: "
                                  f"choose --key block.{' / block.'.join(PER_CHIP_BLOCK_KEYS)}")
            self.key = f"block.{name}"
            self.values = sorted(self.values)

    # -- what the axis sets ------------------------------------------------------------------------------
    def override_keys(self) -> list[str]:
        """Dotted preset keys that every axis value is written to (empty for fraction and preset sweeps)."""
        if self.kind == "sigma":
            return ["noise.sigma"]
        if self.kind == "adc_bits":
            return [IO_KEYS[x] for x in self.io]
        if self.kind == "param":
            return [str(self.key).replace("__", ".")]
        return []  # fraction and preset sweeps; a block sweep sets the block's budget (block_field), no preset key

    @property
    def block_field(self) -> str | None:
        """The ``BlockConfig`` field a block sweep sets (None for the other kinds)."""
        return str(self.key).removeprefix("block.") if self.kind == "block" else None

    @property
    def name(self) -> str:
        """Axis label for plots and tables."""
        if self.kind == "verified_fraction":
            return "fraction of weights write-verified"
        if self.kind == "presets":
            return "device preset"
        if self.kind == "sigma":
            return "device sigma (noise.sigma)"
        if self.kind == "block":
            return f"per-chip block budget ({self.key})"
        if self.kind == "adc_bits":
            return "/".join(x.upper() for x in self.io) + " bits (" + ", ".join(self.override_keys()) + ")"
        return str(self.key)

    def record(self) -> AxisRecord:
        """The axis as results hold it (with its label and preset keys)."""
        return AxisRecord(kind=self.kind, values=list(self.values), key=self.key, io=list(self.io),
                          rules=None if self.rules is None else list(self.rules),
                          points=None if self.points is None else list(self.points),
                          add_tsb_fraction=self.add_tsb_fraction, name=self.name, override_keys=self.override_keys())

    @classmethod
    def from_record(cls, rec: AxisRecord) -> SweepAxis:
        """The axis a sweep's results were measured on (validated again, as if given)."""
        return cls(rec.kind, list(rec.values), key=rec.key, io=list(rec.io), rules=rec.rules, points=rec.points,
                   add_tsb_fraction=rec.add_tsb_fraction)


def _number(v: Any, kind: str) -> float | int:
    """An axis value as a finite int or float: inf, nan, 1e400 and 400-digit integers are one line (they were
    an OverflowError or ValueError from ``int(inf)``)."""
    if isinstance(v, bool):
        raise ConfigError(f"sweep {kind}: value {v!r} is a boolean; give numbers")
    if isinstance(v, (int, float)):
        x = v
    else:
        try:
            x = float(str(v).strip())
        except ValueError:
            raise ConfigError(f"sweep {kind}: value {short_repr(v)} is not a number") from None
    try:
        finite = math.isfinite(float(x))
    except OverflowError:  # an int beyond float range
        raise ConfigError(f"sweep {kind}: value {short_repr(v)} is too large; give a finite number") from None
    if not finite:
        raise ConfigError(f"sweep {kind}: value {short_repr(v)} is not finite; give finite numbers")
    if not isinstance(v, (int, float)) and x == int(x) and "." not in str(v) and "e" not in str(v).lower():
        x = int(x)  # "2" from the command line is the integer 2
    return x


def value_label(v: Any) -> str:
    """Stable text of an axis value (cell ids, CSV, plot legends)."""
    return f"{v:.6g}" if isinstance(v, float) else str(v)
