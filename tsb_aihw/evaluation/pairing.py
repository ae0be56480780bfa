"""Paired comparison of two results on the same chips, matched by chip fingerprint.

Why: chip-to-chip spread (0.5-8 pp on CIFAR-10) hides most differences between two deployments when their means
are compared; the difference per chip does not, and it is how every "A vs B" in docs/results.md is reported. Two
results of any kind (a study's ``results.json``, a ``sweep.json``, a ``frontier.json``) can be paired when they hold
the same chips: every cell records the fingerprints of its chips, so the pairing is checked, not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.stats import Summary, summarize
from tsb_aihw.utils.io import read_json

RESULT_FILES = ("results.json", "sweep.json", "frontier.json")


@dataclass(frozen=True)
class ChipAccuracies:
    """One method's accuracy per chip at one time, with the chips' fingerprints."""

    source: str  # "path#selector", as the user named it
    label: str
    chips: tuple[str, ...]
    accuracy: tuple[float, ...]


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` per chip (accuracy, as a fraction): its summary and on how many chips ``a`` is better."""

    a: ChipAccuracies
    b: ChipAccuracies
    difference: Summary
    a_better: int

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.source, "b": self.b.source, "chips": self.difference.n, "a_better_on": self.a_better,
                "difference": self.difference.to_dict()}


def _result_file(path: Path) -> Path:
    if path.is_dir():
        found = [path / n for n in RESULT_FILES if (path / n).is_file()]
        if len(found) != 1:
            raise ConfigError(f"{path} holds {'none' if not found else 'more than one'} of {', '.join(RESULT_FILES)}; "
                              f"name the file itself")
        return found[0]
    if not path.is_file():
        raise ConfigError(f"no result file at {path}; give a study's results.json, a sweep.json or a frontier.json "
                          f"(or the folder holding one)")
    return path


def _methods(data: dict[str, Any], selector: str, where: str) -> tuple[dict[str, Any], str]:
    """(the methods table the selector's method is in, the method key)."""
    if "studies" in data:  # a frontier: one study per budget
        budget, _, method = selector.partition("/")
        studies = data["studies"]
        if not method or budget not in studies:
            raise ConfigError(f"{where}: a frontier's selector is BUDGET/METHOD with BUDGET one of "
                              f"{', '.join(studies)}, e.g. #{next(iter(studies))}/tsb")
        return studies[budget]["methods"], method
    return data["methods"], selector


def load_chip_accuracies(spec: str, time: str | None = None) -> ChipAccuracies:
    """``PATH#SELECTOR``: a study's method key, a sweep's point id (``AXIS_VALUE|METHOD``, as in sweep.json) or a
    frontier's ``BUDGET/METHOD``; at ``time`` (a time label such as ``0s``; None: the result's first)."""
    path_part, _, selector = spec.partition("#")
    if not selector:
        raise ConfigError(f"{spec}: name what to compare after '#', e.g. {path_part}#tsb (a method), "
                          f"#2|tsb (a sweep point) or #0.2/tsb (a frontier budget and method)")
    data = read_json(_result_file(Path(path_part)), expect=dict)
    if "points" in data:  # a sweep
        points = {p["id"]: p for p in data["points"]}
        if selector not in points:
            raise ConfigError(f"{spec}: no sweep point {selector!r}; the points are {', '.join(points)}")
        entry, label = points[selector], f"{points[selector]['label']} at {data['axis']['key'] or data['kind']}" \
            f" = {points[selector]['axis_value']}"
    else:
        methods, key = _methods(data, selector, spec)
        if key not in methods:
            raise ConfigError(f"{spec}: no method {key!r}; the methods are {', '.join(methods)}")
        entry, label = methods[key], methods[key]["label"]
    labels = list(data.get("time_labels") or entry["accuracy"])  # per_chip's columns follow time_labels
    t = time if time is not None else labels[0]
    if t not in labels:
        raise ConfigError(f"{spec}: no time {t!r}; the times are {', '.join(labels)}")
    if "chips" not in entry or "per_chip" not in entry:
        raise ConfigError(f"{spec}: this result has no per-chip accuracies with chip fingerprints (written by an "
                          f"older version); re-run it to resume its cells")
    i = labels.index(t)
    return ChipAccuracies(spec, label, tuple(entry["chips"]), tuple(float(row[i]) for row in entry["per_chip"]))


def paired_difference(a: ChipAccuracies, b: ChipAccuracies) -> PairedDifference:
    """``a - b`` chip by chip; refused unless both hold the same chips (in any order)."""
    if len(set(a.chips)) != len(a.chips) or len(set(b.chips)) != len(b.chips):
        raise ConfigError("a result lists a chip twice; pairing needs one accuracy per chip")
    if set(a.chips) != set(b.chips):
        common = len(set(a.chips) & set(b.chips))
        raise ConfigError(f"{a.source} and {b.source} are not on the same chips ({len(a.chips)} and {len(b.chips)} "
                          f"chips, {common} in common): pair results of the same preset, overrides, seed and chip "
                          f"count")
    acc_b = dict(zip(b.chips, b.accuracy))
    diffs = [x - acc_b[c] for c, x in zip(a.chips, a.accuracy)]
    return PairedDifference(a, b, summarize(diffs), sum(d > 0 for d in diffs))
