"""Sweep results -> the series the ``tsb_aihw.plots`` functions take (this module draws nothing itself)."""
from __future__ import annotations

import math
from pathlib import Path

from tsb_aihw.plots import (
    plot_accuracy_vs_parameter,
    plot_accuracy_vs_time,
    plot_accuracy_vs_verified_fraction,
    plot_block_budget,
    preset_label,
)
from tsb_aihw.records import SweepPoint, SweepRecord


def _pt(p: SweepPoint, t: str, x: float) -> tuple[float, float, float, float]:
    a = p.accuracy[t]
    lo = a.mean if math.isnan(a.ci95_low) else a.ci95_low
    hi = a.mean if math.isnan(a.ci95_high) else a.ci95_high
    return x, a.mean, lo, hi


def _series(pts: list[tuple[float, float, float, float]], xkey: str) -> dict[str, list[float]]:
    pts = sorted(pts)
    return {xkey: [p[0] for p in pts], "mean": [p[1] for p in pts], "ci_low": [p[2] for p in pts],
            "ci_high": [p[3] for p in pts]}


def _suffix(labels: list[str], t: str) -> str:
    return "" if len(labels) == 1 else f"_{t}"


def fraction_plot_data(data: SweepRecord, t: str
                       ) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, float]]]:
    """(curves, points) for ``plot_accuracy_vs_verified_fraction``: one curve per selection rule, anchored at
    one-shot (fraction 0) and full write-verify (1) when the sweep has them; fixed methods as points."""
    pts = data.points
    anchors = [p for p in pts if p.role == "curve" and not p.curve]
    curves: dict[str, list] = {}
    for p in pts:
        if p.curve:
            curves.setdefault(p.curve, []).append(_pt(p, t, p.verified_fraction))
    for c in curves.values():
        c += [_pt(a, t, a.verified_fraction) for a in anchors]
    if not curves and anchors:
        curves["one-shot / full write-verify"] = [_pt(a, t, a.verified_fraction) for a in anchors]
    points = {}
    for p in pts:
        if p.role == "point":
            x, m, lo, hi = _pt(p, t, p.verified_fraction)
            points[p.label] = {"fraction": x, "mean": m, "ci_low": lo, "ci_high": hi}
    return {k: _series(v, "fraction") for k, v in curves.items()}, points


def _spans_decades(xs: list[float]) -> bool:
    """A log axis reads better for positive values over at least a factor of 10 (images, epochs, lr)."""
    return min(xs) > 0 and max(xs) / min(xs) >= 10


def plot_sweep(data: SweepRecord, out: Path) -> list[Path]:
    """Draw the sweep's plots into ``out``; returns the PNG and PDF paths."""
    kind, labels, ref = data.kind, data.time_labels, data.reference_accuracy
    what = f"{data.model} on {data.dataset.name}"
    preset = preset_label(data.base_preset.name, data.config.get("preset_overrides"))
    files: list[Path] = []
    if kind == "verified_fraction":
        for t in labels:
            curves, points = fraction_plot_data(data, t)
            files += plot_accuracy_vs_verified_fraction(
                curves, points, out / f"accuracy_vs_verified_fraction{_suffix(labels, t)}", reference=ref,
                title=f"{what}, {preset}, t={t}")
    elif kind == "presets":
        series = {}
        for p in data.points:
            s: dict[str, list[float]] = {"times": data.times, "mean": [], "ci_low": [], "ci_high": []}
            for t in labels:
                _, m, lo, hi = _pt(p, t, 0.0)
                s["mean"].append(m)
                s["ci_low"].append(lo)
                s["ci_high"].append(hi)
            series[f"{p.axis_value}: {p.label}"] = s
        files += plot_accuracy_vs_time(series, out / "accuracy_vs_time", reference=ref,
                                       title=f"{what}: accuracy over time per device")
    elif kind == "block":
        tuned = sorted((q for q in data.points if q.role == "curve"), key=lambda q: float(q.axis_value))
        key = data.axis.key
        cost: dict[str, dict[str, list]] = {}  # the block's time does not depend on the evaluation time
        for q in tuned:
            c = cost.setdefault(q.label, {"x": [], "y": []})
            c["x"].append(float(q.axis_value))
            c["y"].append(q.block_time_over_backbone_epoch)
        for t in labels:
            by_method: dict[str, list] = {}
            for q in tuned:
                by_method.setdefault(q.label, []).append(_pt(q, t, float(q.axis_value)))
            levels = {q.label: q.accuracy[t].mean for q in data.points if q.role == "point"}
            files += plot_block_budget({k: _series(v, "x") for k, v in by_method.items()}, levels, cost,
                                       out / f"accuracy_vs_{key.replace('.', '_')}{_suffix(labels, t)}",
                                       xlabel=data.axis.name, reference=ref,
                                       logx=_spans_decades([float(q.axis_value) for q in tuned]),
                                       title=f"{what}, {preset}, t={t}")
    else:
        for t in labels:
            by_method = {}
            for p in data.points:
                by_method.setdefault(p.label, []).append(_pt(p, t, float(p.axis_value)))
            series = {k: _series(v, "x") for k, v in by_method.items()}
            files += plot_accuracy_vs_parameter(series, out / f"accuracy_vs_{kind}{_suffix(labels, t)}",
                                                xlabel=data.axis.name, reference=ref,
                                                title=f"{what}, {preset}, t={t}")
    return files
