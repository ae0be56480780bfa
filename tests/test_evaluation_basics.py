"""Time parsing/labels, Monte-Carlo statistics and plain accuracy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy, format_time, parse_time, parse_times, summarize


@pytest.mark.parametrize("text, seconds", [
    ("1s", 1.0), ("1h", 3600.0), ("1d", 86400.0), ("1mo", 30 * 86400.0), ("1y", 365 * 86400.0),
    ("3600", 3600.0), (3600.0, 3600.0), (0, 0.0), ("0", 0.0), ("2.5h", 9000.0), (" 10 min ", 600.0),
    ("1e3", 1000.0), ("1w", 7 * 86400.0), ("1Y", 365 * 86400.0), ("3 days", 3 * 86400.0),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("bad, match", [
    ("-1h", "negative"), (-5, "negative"), ("abc", "cannot parse"), ("1 fortnight", "unknown time unit"),
    ("1m", "unknown time unit"), ("", "cannot parse"), (float("nan"), "not finite"),
    (float("inf"), "not finite"),
    (True, "boolean"), (None, "type"), ([1], "type"),
])
def test_parse_time_errors_name_the_fix(bad, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_time(bad)
    assert "e.g." in str(info.value) or ">= 0" in str(info.value)


def test_parse_times_and_labels():
    assert parse_times("0,1h, 1d") == [0.0, 3600.0, 86400.0]
    assert parse_times(5) == [5.0]
    assert [format_time(t) for t in (0, 1, 59, 60, 3600, 5400, 86400, 2592000, 31536000, 0.5)] == [
        "0s", "1s", "59s", "1min", "1h", "1.5h", "1d", "1mo", "1y", "0.5s"]


@given(st.floats(min_value=0, max_value=1e10, allow_nan=False, allow_infinity=False))
def test_format_time_round_trips(seconds):
    assert math.isclose(parse_time(format_time(seconds)), seconds, rel_tol=1e-9, abs_tol=1e-12)


def test_summary_matches_textbook_values():
    values = [0.90, 0.92, 0.94, 0.96]
    s = summarize(values)
    assert s.n == 4 and s.mean == pytest.approx(0.93)
    assert s.std == pytest.approx(np.std(values, ddof=1))
    half = 3.182446305284263 * s.std / 2  # t_{0.975, 3}
    assert (s.ci95_low, s.ci95_high) == (pytest.approx(0.93 - half), pytest.approx(0.93 + half))
    assert (s.min, s.max) == (0.90, 0.96)
    assert set(s.to_dict()) == {"mean", "std", "n", "ci95_low", "ci95_high", "min", "max"}


def test_summary_of_one_value_has_no_spread():
    s = summarize([0.5])
    assert s.mean == 0.5 and math.isnan(s.std)
    assert s.to_dict()["std"] is None and s.to_dict()["ci95_low"] is None
    with pytest.raises(ConfigError):
        summarize([])


def test_accuracy_counts_and_restores_modes():
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.Dropout(0.9))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))  # predicts argmax of the input
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1, 0])  # the third is wrong
    loader = DataLoader(TensorDataset(x, y), batch_size=2)
    model.train()
    model[1].eval()  # mixed flags must come back exactly
    assert evaluate_accuracy(model, loader) == pytest.approx(4 / 5)
    assert model.training and model[0].training and not model[1].training
    assert evaluate_accuracy(model, loader, max_batches=1) == 1.0
    with pytest.raises(ConfigError, match="no samples"):
        evaluate_accuracy(model, [])
