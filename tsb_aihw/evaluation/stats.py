"""Monte-Carlo statistics: mean, sample std and a Student-t 95% CI, because 5-200 chips is not "large n"."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

import numpy as np

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.text import short_repr


@dataclass(frozen=True)
class Summary:
    """Summary of n values. With n == 1 the std and CI are undefined (NaN; ``None`` in ``to_dict``)."""

    mean: float
    std: float
    n: int
    ci95_low: float
    ci95_high: float
    min: float
    max: float

    @property
    def ci95_halfwidth(self) -> float:
        return (self.ci95_high - self.ci95_low) / 2

    def to_dict(self) -> JsonObject:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_tree(cls, d: Any, where: str) -> "Summary":
        """A written summary read back (``None`` std/CI of one chip as NaN); a damaged one is one line."""
        names = [f.name for f in fields(cls)]
        if not isinstance(d, dict) or sorted(d) != sorted(names):
            raise ConfigError(f"{where} = {short_repr(d, 80)} is not a summary (keys {', '.join(names)})")
        out: dict[str, Any] = {}
        for k in names:
            v = d[k]
            if v is None and k in ("std", "ci95_low", "ci95_high"):
                v = math.nan
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (k == "n" and not isinstance(v, int)):
                raise ConfigError(f"{where}.{k} = {short_repr(v, 40)} is not a number")
            out[k] = v if k == "n" else float(v)
        return cls(**out)


def t_critical(n: int, confidence: float = 0.95) -> float:
    """Two-sided Student-t critical value for n samples (n - 1 degrees of freedom)."""
    from scipy.stats import t  # scipy ships with scikit-learn; imported lazily to keep imports light

    return float(t.ppf(0.5 + confidence / 2, n - 1))


def summarize(values: Iterable[float]) -> Summary:
    """Mean, std (ddof=1), n, Student-t 95% CI of the mean, min and max of ``values``."""
    arr = np.asarray(list(values), dtype=np.float64).ravel()
    if arr.size == 0:
        raise ConfigError("cannot summarise an empty list of values; run at least one chip")
    n = int(arr.size)
    mean = float(arr.mean())
    if n == 1:
        std = low = high = float("nan")
    else:
        std = float(arr.std(ddof=1))
        half = t_critical(n) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return Summary(mean=mean, std=std, n=n, ci95_low=low, ci95_high=high, min=float(arr.min()),
                   max=float(arr.max()))


def summaries_by_time(per_chip: list[list[float]], labels: list[str]) -> dict[str, Summary]:
    """``{time label: summary over chips}`` of ``per_chip[c][i]`` (chip ``c`` at time ``labels[i]``): the one
    per-time summary behind every results file (accuracies, gaps and paired differences alike)."""
    return {t: summarize([c[i] for c in per_chip]) for i, t in enumerate(labels)}


def paired_differences(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """``a - b`` per chip and time (two results on the same chips, in the same order)."""
    return [[x - y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]


def time_series(per_chip: list[list[float]], times: list[float]) -> dict[str, list[float]]:
    """Plot series of accuracy vs time over chips: mean and 95% CI per time (n = 1: the CI is the mean).

    ``per_chip[c][i]`` = accuracy of chip ``c`` at ``times[i]``; the one builder behind every time plot."""
    sums = [summarize([c[i] for c in per_chip]) for i in range(len(times))]
    return {"times": list(times), "mean": [s.mean for s in sums],
            "ci_low": [s.mean if math.isnan(s.ci95_low) else s.ci95_low for s in sums],
            "ci_high": [s.mean if math.isnan(s.ci95_high) else s.ci95_high for s in sums]}

