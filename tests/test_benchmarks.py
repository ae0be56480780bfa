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
    """In a fresh process: a test worker that ran other tests first may hold freed memory resident (glibc keeps
    it, utils.memory.keep_freed_memory asks it to), and a new block reusing it raises RSS by less than its size
    (46.7 of 64 MB, seen in the two-worker suite on Python 3.13)."""
    import subprocess

    code = ("import sys, time, torch; sys.path.insert(0, sys.argv[1]); import timing\n"
            "with timing.PeakRSS() as rss:\n"
            "    block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MB outside Python's allocator\n"
            "    time.sleep(0.05)  # many sampling intervals, however the sampler is scheduled\n"
            "    del block\n"
            "print(rss.delta)")
    out = subprocess.run([sys.executable, "-c", code, str(BENCH)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 48 * 1024 * 1024


def test_ratio_summary_pairs_rounds():
    timing = load("timing")
    s = timing.ratio_summary([2.0, 9.0, 3.0], [1.0, 3.0, 1.0])
    assert s == {"median": 3.0, "min": 2.0, "max": 3.0, "rounds": 3}


@pytest.mark.parametrize("native, requested, rounds", [(True, None, 5), (False, None, 1), (False, 3, 3)])
def test_bf16_forward_rounds_follow_the_cpu(monkeypatch, native, requested, rounds):
    """Emulated bf16 (10-70x slower) gets one round unless asked for more; native bf16 the bench's rounds."""
    from tsb_aihw.analog import fast_eval

    run = load("run")
    monkeypatch.setitem(fast_eval._native, "cpu", native)
    args = run.parse_args(["--repeats", "5"] + ([] if requested is None else ["--bf16-repeats", str(requested)]))
    assert run.bf16_rounds(args) == (native, rounds)


@pytest.mark.slow
def test_quick_benchmark_writes_results(tmp_path):
    run = load("run")
    results = run.main(["--quick", "--no-pipeline", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    figures = saved["figures"]
    assert figures["analog_forward_over_digital"] > 0
    assert figures["analog_forward_bf16_over_digital"] > 0  # recorded on every CPU, emulated or not
    assert saved["forward"]["bf16"]["native"] == saved["cpu"]["native_bf16"]
    assert set(saved["cpu"]["flags"]) >= {"amx_bf16", "avx512_bf16", "avx2"}
    # AIHWKit's own forward is the slow reference the fast path is measured against
    assert figures["aihwkit_forward_over_digital"] > figures["analog_forward_over_digital"]
    assert saved["mc"]["fast"]["evaluations"] == 2 * 2
    assert saved["memory"]["digital"]["delta_bytes"] > 0
    assert saved["config"]["seed"] == 0 and "provenance" in saved
    assert "analog_forward_over_digital" in (tmp_path / "results.md").read_text()
    assert results["figures"] == figures
