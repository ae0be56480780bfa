"""Drift times: one parser for "1h"/"1mo"/"3600"/3600.0 so configs, the CLI and results agree on seconds."""
from __future__ import annotations

import math
import numbers
import re
from typing import Sequence

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.text import short_repr

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
MONTH = 30 * DAY  # convention: 1mo = 30 d
YEAR = 365 * DAY  # convention: 1y = 365 d

_UNITS: dict[str, float] = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "min": MINUTE, "mins": MINUTE, "minute": MINUTE, "minutes": MINUTE,
    "h": HOUR, "hr": HOUR, "hrs": HOUR, "hour": HOUR, "hours": HOUR,
    "d": DAY, "day": DAY, "days": DAY,
    "w": 7 * DAY, "week": 7 * DAY, "weeks": 7 * DAY,
    "mo": MONTH, "month": MONTH, "months": MONTH,
    "y": YEAR, "yr": YEAR, "year": YEAR, "years": YEAR,
}
# Units used for labels, largest first ("w" is accepted but 7d reads better in a drift table).
_LABEL_UNITS: tuple[tuple[str, float], ...] = (
    ("y", YEAR), ("mo", MONTH), ("d", DAY), ("h", HOUR), ("min", MINUTE), ("s", 1.0),
)
_PATTERN = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([a-zA-Z]*)\s*$")
#: the one default drift-time grid (drift studies, ``evaluate_drift``); 1 s ... 1 y on a log axis
DRIFT_TIMES: tuple[str, ...] = ("0s", "1s", "1h", "1d", "1mo", "1y")
_HINT = "use a number of seconds or a number with a unit s, min, h, d, w, mo (30 d) or y (365 d), e.g. '1h'"


def parse_time(value: str | float | int) -> float:
    """Seconds after programming for ``"1s"|"1h"|"1d"|"1mo"|"1y"|"3600"|3600.0``; ConfigError otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"drift time {short_repr(value)} is a boolean; {_HINT}")
    if isinstance(value, numbers.Real):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond float range, e.g. 400 digits
            raise ConfigError(f"drift time {short_repr(value)} is too large to be a number of seconds; "
                              f"{_HINT}") from None
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ConfigError(f"cannot parse drift time {short_repr(value)}; {_HINT}")
        number, unit = match.groups()
        unit_key = unit.lower()  # "m" is not a unit on purpose: minute or month would be a guess
        if unit == "":
            scale = 1.0
        elif unit_key in _UNITS:
            scale = _UNITS[unit_key]
        else:
            raise ConfigError(f"unknown time unit {short_repr(unit)} in drift time {short_repr(value)}; {_HINT}")
        seconds = float(number) * scale
    else:
        raise ConfigError(f"drift time {short_repr(value)} has type {type(value).__name__}; {_HINT}")
    if not math.isfinite(seconds):
        raise ConfigError(f"drift time {short_repr(value)} is not finite; {_HINT}")
    if seconds < 0:
        raise ConfigError(f"drift time {short_repr(value)} is negative; times are seconds after programming (>= 0)")
    return seconds


def parse_times(values: str | float | int | Sequence[str | float]) -> list[float]:
    """A list of times (a single value or a comma-separated string also works), order kept."""
    if isinstance(values, str):
        return [parse_time(v) for v in values.split(",") if v.strip()]
    if isinstance(values, numbers.Real):
        return [parse_time(float(values))]
    return [parse_time(v) for v in values]


def format_time(seconds: float) -> str:
    """A short label such that ``parse_time(format_time(s)) == s`` (up to float rounding): 3600 -> "1h"."""
    seconds = parse_time(seconds)
    if seconds == 0:
        return "0s"
    for unit, scale in _LABEL_UNITS:
        if seconds >= scale:
            value = seconds / scale
            text = f"{value:.6g}"
            if math.isclose(float(text) * scale, seconds, rel_tol=1e-9, abs_tol=1e-12):
                return f"{text}{unit}"
    return f"{seconds:.17g}s"


def check_times(values: list | tuple, what: str = "times") -> list[float]:
    """Parsed times, refusing an empty list and duplicates (two labels for one time: '1h' and 3600)."""
    seconds = []
    for i, v in enumerate(values):
        try:
            seconds.append(parse_time(v))
        except ConfigError as exc:
            raise ConfigError(f"{what}[{i}]: {exc}") from None
    if not seconds:
        raise ConfigError(f"{what} is empty: give at least one time, e.g. [0] or ['1s', '1d']")
    dup = sorted({format_time(t) for t in seconds if seconds.count(t) > 1})
    if dup:
        raise ConfigError(f"{what} repeat {', '.join(dup)} (each time once; '1h' and 3600 are the same time)")
    return seconds
