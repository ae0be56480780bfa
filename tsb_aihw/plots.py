"""Publication-style matplotlib figures for Monte-Carlo results (PNG + PDF, headless)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tsb_aihw.evaluation.times import format_time  # noqa: E402
from tsb_aihw.utils.io import JsonValue  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    import numpy.typing as npt

    from tsb_aihw.analog.weight_errors import WeightErrors
    from tsb_aihw.records import FrontierPoint, FrontierResult

STYLE: Any = {  # matplotlib rcParams (its stubs want literal keys)
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
    from tsb_aihw.utils.io import atomic_output

    base = Path(path).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    try:
        for ext in (".png", ".pdf"):
            final = base.with_suffix(ext)
            with atomic_output(final) as tmp:  # disk full: one line naming the file, the old plot kept
                fig.savefig(tmp, bbox_inches="tight")
            out.append(final)
    finally:
        plt.close(fig)
    return out


def _mean_with_band(ax: plt.Axes, x: Sequence[float], s: Mapping[str, Sequence[float]], label: str,
                    alpha: float = 0.18) -> None:
    """One method's mean accuracy (%) as a marked line and its ``ci_low``..``ci_high`` band in the line's colour."""
    (line,) = ax.plot(x, [100 * m for m in s["mean"]], marker="o", ms=3, label=label)
    # a CI of a mean accuracy is clipped to [0, 100] % (few chips can give a t-interval past 100 %)
    ax.fill_between(x, [max(0.0, 100 * v) for v in s["ci_low"]], [min(100.0, 100 * v) for v in s["ci_high"]],
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
    events: Mapping[str, float] | None = None,
) -> list[Path]:
    """Accuracy vs time after programming, log time axis, mean line and 95% CI band per method.

    ``series[method] = {"times": [...], "mean": [...], "ci_low": [...], "ci_high": [...]}`` (t=0 is drawn at
    the first positive time's left edge, since a log axis has no zero). ``events = {label: seconds}`` draws
    labelled vertical lines (e.g. the times a TSB refresh re-wrote the block).
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for name, s in series.items():
            _mean_with_band(ax, [max(float(x), 0.3) for x in s["times"]], s, name)
        ax.set_xscale("log")
        ticks = sorted({max(float(x), 0.3) for s in series.values() for x in s["times"]})
        ax.set_xticks(ticks, [("0" if x <= 0.3 else format_time(x)) for x in ticks])
        ax.minorticks_off()
        for label, x in (events or {}).items():
            ax.axvline(max(float(x), 0.3), color="0.45", ls="--", lw=0.8)
            ax.annotate(label, (max(float(x), 0.3), 1), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=7, color="0.35", xytext=(-2, -3), textcoords="offset points")
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
    fracs = [f for c in curves.values() for f in c["fraction"] if f > 0]
    fracs += [p["fraction"] for p in points.values() if p["fraction"] > 0]
    floor = min(fracs) / 3 if fracs else 1e-4
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for name, c in curves.items():
            _mean_with_band(ax, [max(f, floor) for f in c["fraction"]], c, name, alpha=0.15)
        markers = iter("*DsP^vX")
        for name, p in points.items():
            m = next(markers, "o")
            x = max(p["fraction"], floor)
            yerr = [[100 * (p["mean"] - p["ci_low"])], [100 * (p["ci_high"] - p["mean"])]]
            ax.errorbar([x], [100 * p["mean"]], yerr=yerr,
                        marker=m, ms=11 if m == "*" else 7, capsize=3, ls="none", label=name, zorder=5)
        ax.set_xscale("log")
        at_zero = any(f <= 0 for c in curves.values() for f in c["fraction"])
        if at_zero or any(p["fraction"] <= 0 for p in points.values()):
            ax.axvline(floor, color="0.6", lw=0.6, ls=":")
            ax.annotate("one-shot (0)", (floor, 0), xycoords=("data", "axes fraction"), xytext=(3, 3),
                        textcoords="offset points", ha="left", va="bottom", fontsize=7, color="0.35")
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


def _swept_ticks(ax: plt.Axes, xs: Sequence[float], logx: bool, min_gap_in: float = 0.45) -> None:
    """Tick the swept values themselves (not log decades); labels closer than ``min_gap_in`` inches (e.g. 3750 next
    to 4000 in a narrow panel) are slanted so that they do not overprint."""
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    pos = np.log10(xs) if logx else np.asarray(xs, dtype=float)
    if len(pos) < 2 or pos[-1] == pos[0]:
        return
    width_in = ax.get_position().width * ax.figure.get_figwidth()
    if np.diff(pos).min() / (pos[-1] - pos[0]) * width_in < min_gap_in:
        ax.tick_params(axis="x", labelrotation=40)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")


def plot_block_budget(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    levels: Mapping[str, float],
    cost: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | os.PathLike,
    *,
    xlabel: str,
    reference: float | None = None,
    title: str = "",
    logx: bool = False,
) -> list[Path]:
    """A block-budget sweep. Left: accuracy vs the per-chip block's budget (mean and 95% CI band per method),
    the methods without a per-chip block as horizontal lines. Right: ``cost[method]["y"]`` (the block's time per
    chip in backbone epochs) against ``cost[method]["x"]``."""
    with plt.rc_context(STYLE):
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
        for name, s in curves.items():
            _mean_with_band(ax, s["x"], s, name)
        for i, (name, y) in enumerate(levels.items()):
            ax.axhline(100 * y, color=f"C{(len(curves) + i) % 10}", ls="--", lw=1, label=name)
        for name, c in cost.items():
            ax2.plot(c["x"], c["y"], marker="o", ms=3, label=name)
        ax2.set_xlabel(xlabel)
        ax2.set_ylabel("block training per chip (backbone epochs)")
        ax2.set_ylim(bottom=0)
        xs = sorted({x for c in curves.values() for x in c["x"]})
        for a in (ax, ax2):
            if logx:
                a.set_xscale("log")
            _swept_ticks(a, xs, logx)
        return _finish(fig, ax, path, xlabel=xlabel, reference=reference, title=title)


def _error_pools(panel: WeightErrors | Mapping[str, npt.ArrayLike], split: str | None) -> dict[str, np.ndarray]:
    if hasattr(panel, "split"):
        return panel.split(split)
    return {k: np.asarray(v, dtype=float).reshape(-1) for k, v in panel.items()}


def plot_weight_error_histograms(
    panels: Mapping[str, WeightErrors | Mapping[str, npt.ArrayLike]],
    path: str | os.PathLike,
    *,
    split: str | None = "group",
    logy: bool = True,
    bins: int = 121,
    xlim: float | None = None,
    title: str = "",
) -> list[Path]:
    """Histograms of per-weight errors relative to each layer's max|W| (%), one panel per moment/model.

    ``panels[title]`` is a :class:`tsb_aihw.analog.weight_errors.WeightErrors` (pooled by ``split``: "group"
    = backbone vs TSB block, "verified" = verified vs one-shot cells, "group+verified", None = all) or a
    ``{series label: errors}`` mapping of relative errors. Histograms are densities (a 256-weight block and a
    60k-weight backbone on one axis), on a shared symmetric x range (``xlim`` in % of max|W|, default: the
    99.9th percentile of |error| over all panels); the legend gives each pool's size, std and the share of
    weights outside the range, so nothing is hidden by the clipping. ``logy`` shows the tails.
    """
    pooled = {name: _error_pools(p, split) for name, p in panels.items()}
    every = [100 * e for pools in pooled.values() for e in pools.values() if e.size]
    if not every:
        raise ValueError("plot_weight_error_histograms: no errors to plot (all panels are empty)")
    lim = xlim if xlim is not None else 1.05 * float(np.quantile(np.abs(np.concatenate(every)), 0.999))
    lim = lim if lim > 0 else 1.0
    edges = np.linspace(-lim, lim, bins + 1)
    style = dict(STYLE, **{"figure.figsize": (min(3.8 * len(pooled) + 0.6, 14.0), 3.8)})
    with plt.rc_context(style):
        fig, axes = plt.subplots(1, len(pooled), sharex=True, sharey=True, squeeze=False)
        colors: dict[str, str] = {}
        cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
        for ax, (name, pools) in zip(axes[0], pooled.items()):
            for label, e in pools.items():
                pct = 100 * e
                color = colors.setdefault(label, next(cycle))
                outside = float(np.mean(np.abs(pct) > lim)) if pct.size else 0.0
                note = f", {100 * outside:.2g}% outside" if outside > 0 else ""
                ax.hist(np.clip(pct, -lim, lim), bins=edges, density=True, histtype="step", lw=1.3, color=color,
                        label=f"{label} (n={pct.size:,})\nstd {pct.std():.2f}%{note}")
                ax.hist(np.clip(pct, -lim, lim), bins=edges, density=True, histtype="stepfilled", alpha=0.12,
                        color=color)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("weight error (% of layer max|W|)")
            if logy:
                ax.set_yscale("log")
            ax.legend(loc="upper left", fontsize=6.5)
        axes[0][0].set_ylabel("density (per % of max|W|)")
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        return _save(fig, path)


def preset_label(name: str, overrides: Mapping[str, JsonValue] | None) -> str:
    """``nvcim-gaussian (noise.sigma=0.2)``: a preset with the config's overrides, so that plots of one preset at two
    noise levels do not carry the same title."""
    parts = ", ".join(f"{k}={v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{k}={v}"
                      for k, v in sorted((overrides or {}).items()))
    return f"{name} ({parts})" if parts else name


def _on_full_backbone(point: FrontierPoint) -> bool:
    """A frontier point whose block sits on (b)'s fully trained backbone (``tsb_full``): no early budget applies.
    Files written before points carried ``backbone`` name the variant only."""
    return (point.backbone or ("full" if point.method == "tsb_full" else "early")) == "full"


def plot_frontier(result: FrontierResult, path: str | os.PathLike) -> list[Path]:
    """Training speed-up (x) vs accuracy-gap improvement (y), both log: one curve per TSB variant over the early
    backbone's budget, the baselines as points, the paper's claimed region (>5x, >20x) shaded.

    Points whose ratio is only a lower bound (TSB's gap within Monte-Carlo error of 0) are drawn hollow; points
    without a defined ratio (the baseline's gap is ~0) are left out and listed in frontier.json."""
    region = result.paper_region
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ys: list[float] = [1.0, region["gap_improvement"]]
        xs: list[float] = [1.0, region["speedup"]]
        for i, pts in enumerate(result.curves.values()):
            good = [(p, p.gap_improvement) for p in pts if p.gap_improvement is not None]
            if not good:
                continue
            x, y = [p.speedup for p, _ in good], [g for _, g in good]
            (line,) = ax.plot(x, y, marker="o", label=good[0][0].label)
            budgets: dict[tuple[float, float], list[str]] = {}  # a point shared by budgets (the block on (b))
            for p, g in good:                                     # gets one label naming them all
                if p.gap_improvement_kind == "lower_bound":
                    ax.plot([p.speedup], [g], "o", mfc="white", color=line.get_color())
                names = budgets.setdefault((p.speedup, g), [])
                name = "(b)" if _on_full_backbone(p) else f"{p.budget:g}"
                if name not in names:
                    names.append(name)
            for xy, names in budgets.items():  # curves alternate above / below their points: variants lie close
                ax.annotate(", ".join(names), xy, fontsize=7, textcoords="offset points",
                            xytext=(3, 3) if i % 2 == 0 else (3, -9), color=line.get_color())
            xs += x
            ys += y
        markers = iter("sD^vPX*")
        for p in result.baselines:
            if p.gap_improvement is None:
                continue
            ax.plot([p.speedup], [p.gap_improvement], next(markers, "o"), ls="none", label=p.label)
            xs.append(p.speedup)
            ys.append(p.gap_improvement)
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo_x, hi_x = min(xs) / 1.5, max(xs) * 1.5
        lo_y, hi_y = min(ys) / 1.5, max(ys) * 1.5
        ax.fill_between([region["speedup"], hi_x], region["gap_improvement"], hi_y, color="0.85", zorder=0,
                        label=f"paper's claim (>{region['speedup']:g}x, >{region['gap_improvement']:g}x)")
        ax.axhline(1.0, color="k", ls=":", lw=1)
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(lo_y, hi_y)
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x")  # 2x, not 2 x 10^0
        whole = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x" if v >= 2 and v == round(v) else "")
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(whole)  # 2x .. 9x between decades; none below 1x (they crowd)
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("training speed-up over (b)  (labels: early-backbone budget; (b): on (b)'s backbone)")
        ax.set_ylabel("accuracy-gap improvement over (b)")
        preset = preset_label(result.preset, result.config.get("preset_overrides"))
        ax.set_title(f"{result.model} on {preset}: {result.chips} chips")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7)  # outside: it hid the paper's region
        return _save(fig, path)
