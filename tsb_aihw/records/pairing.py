"""Paired comparison of two results on the same chips, matched by chip fingerprint.

Why: chip-to-chip spread (0.5-8 pp on CIFAR-10) hides most differences between two deployments when their means
are compared; the difference per chip does not, and it is how every "A vs B" in docs/results.md is reported. Two
results of any kind (a study's ``results.json``, a ``sweep.json``, a ``frontier.json``) can be paired when they hold
the same chips: every cell records the fingerprints of its chips, so the pairing is checked, not assumed.

Two methods of one result file on one device (a study's tsb and full_noise_injection, say) program other weights,
so their chips' fingerprints differ, yet chip ``i`` is the same seeded chip in both (every chip draws from
(seed, chip index)): those are paired by chip index, and the comparison says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.evaluation.stats import Summary, summarize
from tsb_aihw.records.base import DAMAGED, load_record
from tsb_aihw.records.frontier import FrontierResult
from tsb_aihw.records.study import MethodResult, StudiesResult, StudyResult
from tsb_aihw.records.sweep import SweepRecord
from tsb_aihw.utils.io import JsonObject, read_json

RESULT_FILES = ("results.json", "sweep.json", "frontier.json")


@dataclass(frozen=True)
class ChipAccuracies:
    """One method's accuracy per chip at one time, with the chips' fingerprints."""

    source: str  # "path#selector", as the user named it
    label: str
    chips: tuple[str, ...]
    accuracy: tuple[float, ...]
    device: str = ""  # the result file and the device its chips were drawn on: same device, same chip i


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` per chip (accuracy, as a fraction): its summary and on how many chips ``a`` is better."""

    a: ChipAccuracies
    b: ChipAccuracies
    difference: Summary
    a_better: int
    paired_by: str = "chip fingerprint"  # or "chip index": two methods of one result file on one device

    def to_dict(self) -> JsonObject:
        return {"a": self.a.source, "b": self.b.source, "chips": self.difference.n, "a_better_on": self.a_better,
                "paired_by": self.paired_by, "difference": self.difference.to_dict()}


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
    if path.name not in RESULT_FILES:
        raise ConfigError(f"{path} is not a result file; give a study's results.json, a sweep.json or a "
                          f"frontier.json (or the folder holding one)")
    return path


Result = StudyResult | StudiesResult | SweepRecord | FrontierResult


def _methods(result: StudyResult | StudiesResult | FrontierResult, selector: str,
             where: str) -> tuple[dict[str, MethodResult], str]:
    """(the methods table the selector's method is in, the method key)."""
    if isinstance(result, StudyResult):
        return result.methods, selector
    what = "BUDGET" if isinstance(result, FrontierResult) else "STUDY"  # a frontier's budgets, a run's presets
    group, _, method = selector.partition("/")
    studies = result.studies
    if not method or group not in studies:
        raise ConfigError(f"{where}: the selector of this result is {what}/METHOD with {what} one of "
                          f"{', '.join(studies)}, e.g. #{next(iter(studies))}/tsb")
    return studies[group].methods, method


def _kind(data: JsonObject) -> type[Result]:
    """The record a result file holds, by the keys only that kind has."""
    if "points" in data:
        return SweepRecord
    if "curves" in data:
        return FrontierResult
    return StudiesResult if "command" in data else StudyResult


def split_selector(spec: str) -> tuple[str, str]:
    """``PATH#SELECTOR`` split at the last ``#`` before the selector (a ``#`` may be part of a folder's name)."""
    path_part, sep, selector = spec.rpartition("#")
    if not sep:
        return spec, ""
    return path_part, selector


def load_chip_accuracies(spec: str, time: str | None = None) -> ChipAccuracies:
    """``PATH#SELECTOR``: a study's method key, a sweep's point id (``AXIS_VALUE|METHOD``, as in sweep.json) or a
    frontier's ``BUDGET/METHOD``; at ``time`` (a time label such as ``0s``; None: the result's first)."""
    path_part, selector = split_selector(spec)
    if not selector:
        raise ConfigError(f"{spec}: name what to compare after '#', e.g. {path_part}#tsb (a method), "
                          f"#2|tsb (a sweep point) or #0.2/tsb (a frontier budget and method)")
    file = _result_file(Path(path_part))
    record = load_record(_kind(data := read_json(file, expect=dict)), data, str(file))
    per_chip: list[list[float]]
    if isinstance(record, SweepRecord):
        points = {p.id: p for p in record.points}
        if selector not in points:
            raise ConfigError(f"{spec}: no sweep point {selector!r}; the points are {', '.join(points)}")
        point = points[selector]
        label = f"{point.label} at {record.axis.key or record.kind} = {point.axis_value}"
        chips, per_chip = point.chips, point.per_chip
        labels = record.time_labels
        device = point.preset_identity
    else:
        methods, key = _methods(record, selector, spec)
        if key not in methods:
            raise ConfigError(f"{spec}: no method {key!r}; the methods are {', '.join(methods)}")
        m = methods[key]
        label, chips, per_chip = m.label, m.chips, m.per_chip
        # per_chip's columns follow time_labels (a frontier keeps its studies' times only in their summaries)
        labels = record.time_labels if isinstance(record, StudyResult) else _study_labels(record, selector, m)
        # one study's methods share its device; a run's studies (presets) do not; a frontier's budgets do
        device = selector.partition("/")[0] if isinstance(record, StudiesResult) else ""
    t = time if time is not None else labels[0]
    if t not in labels:
        raise ConfigError(f"{spec}: no time {t!r}; the times are {', '.join(labels)}")
    if len(chips) != len(per_chip):
        raise TSBError(f"{file}: {selector} lists {len(chips)} chips but {len(per_chip)} rows of accuracies; "
                       f"{DAMAGED}")
    i = labels.index(t)
    return ChipAccuracies(spec, label, tuple(chips), tuple(row[i] for row in per_chip),
                          device=f"{file.resolve()}|{device}")


def _study_labels(result: StudiesResult | FrontierResult, selector: str, m: MethodResult) -> list[str]:
    """The time labels of the selected study: a run's studies keep theirs; a frontier's keep them only as the
    keys of their summaries (the frontier's budgets share one set of times)."""
    if isinstance(result, StudiesResult):
        return result.studies[selector.partition("/")[0]].time_labels
    return list(m.accuracy)


def paired_difference(a: ChipAccuracies, b: ChipAccuracies) -> PairedDifference:
    """``a - b`` chip by chip: by fingerprint when both hold the same chips (in any order), else by chip index
    when both come from one result file and device (the same seeded chips, other weights programmed)."""
    if len(set(a.chips)) != len(a.chips) or len(set(b.chips)) != len(b.chips):
        raise ConfigError("a result lists a chip twice; pairing needs one accuracy per chip")
    if set(a.chips) == set(b.chips):
        acc_b = dict(zip(b.chips, b.accuracy))
        diffs = [x - acc_b[c] for c, x in zip(a.chips, a.accuracy)]
        return PairedDifference(a, b, summarize(diffs), sum(d > 0 for d in diffs))
    if a.device and a.device == b.device and len(a.chips) == len(b.chips):
        diffs = [x - y for x, y in zip(a.accuracy, b.accuracy)]
        return PairedDifference(a, b, summarize(diffs), sum(d > 0 for d in diffs), paired_by="chip index")
    common = len(set(a.chips) & set(b.chips))
    raise ConfigError(f"{a.source} and {b.source} are not on the same chips ({len(a.chips)} and {len(b.chips)} "
                      f"chips, {common} in common): pair results of the same preset, overrides, seed and chip "
                      f"count")
