"""The benchmark suite (benchmarks/run.py): its measuring helpers and a tiny end-to-end run."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_peak_rss_sees_torch_allocations():
    import torch

    timing = load("timing")
    with timing.PeakRSS() as rss:
        block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB outside Python's allocator
        del block
    assert rss.delta > 48 * 1024 * 1024


def test_ratio_summary_pairs_rounds():
    timing = load("timing")
    s = timing.ratio_summary([2.0, 9.0, 3.0], [1.0, 3.0, 1.0])
    assert s == {"median": 3.0, "min": 2.0, "max": 3.0, "rounds": 3}


@pytest.mark.slow
def test_quick_benchmark_writes_results(tmp_path):
    run = load("run")
    results = run.main(["--quick", "--no-pipeline", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    figures = saved["figures"]
    assert figures["analog_forward_over_digital"] > 0
    # AIHWKit's own forward is the slow reference the fast path is measured against
    assert figures["aihwkit_forward_over_digital"] > figures["analog_forward_over_digital"]
    assert saved["mc"]["fast"]["evaluations"] == 2 * 2
    assert saved["memory"]["digital"]["delta_bytes"] > 0
    assert saved["config"]["seed"] == 0 and "provenance" in saved
    assert "analog_forward_over_digital" in (tmp_path / "results.md").read_text()
    assert results["figures"] == figures
