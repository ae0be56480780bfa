"""Publication-style matplotlib figures for Monte-Carlo results (PNG + PDF, headless)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tsb_aihw.evaluation.times import format_time  # noqa: E402

STYLE = {
    "figure.figsize": (6.4, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "font.size": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8,
}


def _save(fig: plt.Figure, path: str | os.PathLike) -> list[Path]:
    """Save as PNG and PDF next to each other (temporary file + rename, so a crash leaves no half file)."""
    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in (".png", ".pdf"):
        final = base.with_suffix(ext)
        tmp = final.with_name(f".{final.name}.tmp{ext}")
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, final)
        out.append(final)
    plt.close(fig)
    return out


def _mean_with_band(ax: plt.Axes, x: Sequence[float], s: Mapping[str, Sequence[float]], label: str,
                    alpha: float = 0.18) -> None:
    """One method's mean accuracy (%) as a marked line and its ``ci_low``..``ci_high`` band in the line's colour."""
    (line,) = ax.plot(x, [100 * m for m in s["mean"]], marker="o", ms=3, label=label)
    ax.fill_between(x, [100 * v for v in s["ci_low"]], [100 * v for v in s["ci_high"]],
                    color=line.get_color(), alpha=alpha, lw=0)


def _finish(fig: plt.Figure, ax: plt.Axes, path: str | os.PathLike, *, xlabel: str, reference: float | None,
            title: str) -> list[Path]:
    """What every accuracy plot ends with: reference line, labels, title, legend, PNG + PDF."""
    if reference is not None:
        ax.axhline(100 * reference, color="k", ls=":", lw=1, label="reference (digital)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)  mean and 95% CI over chips")
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return _save(fig, path)


def plot_accuracy_vs_time(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    *,
    reference: float | None = None,
    title: str = "",
) -> list[Path]:
    """Accuracy vs time after programming, log time axis, mean line and 95% CI band per method.

    ``series[method] = {"times": [...], "mean": [...], "ci_low": [...], "ci_high": [...]}`` (t=0 is drawn at
    the first positive time's left edge, since a log axis has no zero).
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for name, s in series.items():
            _mean_with_band(ax, [max(float(x), 0.3) for x in s["times"]], s, name)
        ax.set_xscale("log")
        ticks = sorted({max(float(x), 0.3) for s in series.values() for x in s["times"]})
        ax.set_xticks(ticks, [("0" if x <= 0.3 else format_time(x)) for x in ticks])
        ax.minorticks_off()
        return _finish(fig, ax, path, xlabel="time after programming", reference=reference, title=title)


def plot_accuracy_vs_verified_fraction(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    points: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike,
    *,
    reference: float | None = None,
    title: str = "",
) -> list[Path]:
    """Accuracy vs fraction of weights write-verified (log x): selective-verify curves, TSB and others as points.

    ``curves[name] = {"fraction": [...], "mean": [...], "ci_low": [...], "ci_high": [...]}``;
    ``points[name] = {"fraction": f, "mean": m, "ci_low": lo, "ci_high": hi}``. A fraction of 0 (one-shot) is
    drawn at the axis' left edge.
    """
    fracs = [f for c in curves.values() for f in c["fraction"] if f > 0] + [p["fraction"] for p in points.values() if p["fraction"] > 0]
    floor = min(fracs) / 3 if fracs else 1e-4
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for name, c in curves.items():
            _mean_with_band(ax, [max(f, floor) for f in c["fraction"]], c, name, alpha=0.15)
        markers = iter("*DsP^vX")
        for name, p in points.items():
            m = next(markers, "o")
            x = max(p["fraction"], floor)
            ax.errorbar([x], [100 * p["mean"]], yerr=[[100 * (p["mean"] - p["ci_low"])], [100 * (p["ci_high"] - p["mean"])]],
                        marker=m, ms=11 if m == "*" else 7, capsize=3, ls="none", label=name, zorder=5)
        ax.set_xscale("log")
        return _finish(fig, ax, path, xlabel="fraction of weights write-verified (0 drawn at left edge)",
                       reference=reference, title=title)


def plot_accuracy_vs_parameter(
    series: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    reference: float | None = None,
    title: str = "",
    logx: bool = False,
) -> list[Path]:
    """Accuracy vs a swept parameter (device sigma, ADC bits, ...): mean and 95% CI band per method."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for name, s in series.items():
            _mean_with_band(ax, s["x"], s, name)
        if logx:
            ax.set_xscale("log")
        return _finish(fig, ax, path, xlabel=xlabel, reference=reference, title=title)
