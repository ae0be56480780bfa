"""Which result fields are wall-clock timings, so two runs can be compared on everything else.

Wall-clock fields are exactly the keys in ``WALL_CLOCK_KEYS`` (durations measured with ``perf_counter``) and
``DERIVED_FROM_TIMINGS`` (values computed from them: the training speed-up claim, with its ``baseline_s``
/ ``tsb_s`` parts); ``RUN_HISTORY_KEYS`` (which chips a resumed run re-read) is left out of comparisons too.
``_s`` alone does not mark a timing: ``time_s`` is a drift time and ``cost.time_s`` a modelled programming
time, both deterministic. Everything else in ``results.json`` is a function of
config + seed + package versions + torch thread count and must be bit-identical between two runs on the same
machine (tests/test_determinism.py). A new wall-clock field must be added here, or that test fails.
"""
from __future__ import annotations

from typing import Any

from tsb_aihw.utils.io import JsonObject

WALL_CLOCK_KEYS = frozenset({
    "wall_time_s", "train_time_s", "block_time_s", "backbone_time_s",  # study and training durations
    "wall_s", "cell_time_s",  # one (method, chip) cell, and its mean per method
    "seconds", "seconds_per_epoch",  # per-epoch training history
    "chip_seconds",  # Monte-Carlo: wall time per chip
    "backbone_epoch_s",  # block sweep: one epoch of (b)'s training
    "block_train0_s", "train_s",  # refresh: the first block's training, and each refresh's
})
DERIVED_FROM_TIMINGS = frozenset({"training_speedup", "block_time_over_backbone_epoch"})
# What happened to this run rather than what it computed: which chips a resumed run read back from disk.
RUN_HISTORY_KEYS = frozenset({"resumed_chips"})


def is_timing_key(key: str) -> bool:
    """True for keys holding wall-clock seconds, values computed from them, or the run's own history."""
    return key in WALL_CLOCK_KEYS or key in DERIVED_FROM_TIMINGS or key in RUN_HISTORY_KEYS


def without_timing(obj: Any) -> Any:
    """A copy of a JSON-like tree with every timing key removed (recursively)."""
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if not is_timing_key(str(k))}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def timing_only(obj: Any, path: str = "") -> JsonObject:
    """``{dotted path: value}`` of every timing field (what ``without_timing`` drops), for reports."""
    out: JsonObject = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            if is_timing_key(str(k)):
                out[p] = v
            else:
                out.update(timing_only(v, p))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(timing_only(v, f"{path}[{i}]"))
    return out


def result_differences(a: Any, b: Any, path: str = "", limit: int = 20) -> list[str]:
    """Dotted paths where two results differ, timing fields excluded (empty list: identical)."""
    diffs: list[str] = []

    def walk(x: Any, y: Any, p: str) -> None:
        if len(diffs) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                if is_timing_key(str(k)):
                    continue
                if k not in x or k not in y:
                    diffs.append(f"{p}.{k}: only in {'second' if k not in x else 'first'}")
                else:
                    walk(x[k], y[k], f"{p}.{k}" if p else str(k))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{p}[{i}]")
        elif x != y or type(x) is not type(y):
            diffs.append(f"{p}: {x!r} != {y!r}")

    walk(a, b, path)
    return diffs
