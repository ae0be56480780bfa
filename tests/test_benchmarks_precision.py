"""The precision benchmarks of issue 34 at toy size: the speed script's JSON and the accuracy script's verdict."""
from __future__ import annotations

import pytest

from test_benchmarks import load

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_precision_records_both_precisions_and_the_cpu(tmp_path):
    bench = load("train_precision")
    out = bench.main(["--models", "vgg8", "--widths", "0.25", "--batch", "4", "--steps", "1", "--rounds", "1",
                      "--threads", "1", "--out", str(tmp_path / "tp.json")])
    (row,) = out["runs"]
    assert set(row["images_per_s"]) == {"fp32", "bf16"} and all(v > 0 for v in row["images_per_s"].values())
    assert row["bf16_over_fp32"]["rounds"] == 1
    assert set(out["cpu"]["flags"]) >= {"amx_bf16", "avx512_bf16", "avx2"} and out["cpu"]["model_name"]
    assert (tmp_path / "tp.json").exists()


def test_precision_accuracy_smoke_and_verdict(tmp_path):
    bench = load("precision_accuracy")
    doc = bench.main(["--smoke", "--threads", "1", "--out", str(tmp_path / "pa.json")])
    assert {r["precision"] for r in doc["runs"]} == {"fp32", "bf16"}
    again = bench.main(["--smoke", "--threads", "1", "--out", str(tmp_path / "pa.json")])  # resumes: nothing new
    assert len(again["runs"]) == 2
    s = bench.summary({"fp32": [0.80, 0.82, 0.81], "bf16": [0.81, 0.80, 0.83]})
    assert s["within_seed_spread"] is True and s["bf16_minus_fp32"] == pytest.approx(0.0033, abs=1e-4)
    assert bench.summary({"fp32": [0.80, 0.81, 0.80], "bf16": [0.70, 0.71, 0.70]})["within_seed_spread"] is False
