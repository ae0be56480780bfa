"""Timing and memory helpers for the benchmarks: interleaved repeats, medians, peak-RSS sampling.

The machine is shared, so every figure is a ratio of runs interleaved in one process (A, B, A, B, ...),
summarised by the median over repeats; absolute seconds are recorded but only the ratios are compared.
"""
from __future__ import annotations

import statistics
import threading
import time
from typing import Callable


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc/self/statm``)."""
    import os

    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples RSS every ``interval`` s in a thread; ``peak - start`` is the working memory of the block.

    RSS, not tracemalloc: torch allocates tensors outside Python's allocator, which tracemalloc cannot see.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.start = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def delta(self) -> int:
        return self.peak - self.start


def seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every function once per round, ``repeats`` rounds (after ``warmup``); seconds per function."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            out[name].append(seconds(fn))
    return out


def ratio_summary(num: list[float], den: list[float]) -> dict[str, float]:
    """Median, min and max of the per-round ratios num/den (paired rounds share the machine's load)."""
    ratios = [a / b for a, b in zip(num, den)]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}
