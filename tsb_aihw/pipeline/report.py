"""Human-facing outputs of a study: CSV tables, plots and ``report.md`` (claims beside the paper's)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tsb_aihw.evaluation.stats import time_series
from tsb_aihw.pipeline.claims import PAPER, format_claim
from tsb_aihw.plots import plot_accuracy_vs_time, plot_accuracy_vs_verified_fraction
from tsb_aihw.records import MethodResult, StudyResult
from tsb_aihw.utils.io import CsvRow, atomic_write_csv, atomic_write_text


def method_rows(results: StudyResult) -> Sequence[CsvRow]:
    """One CSV row per (method, time): accuracy summary, gap, verified fraction, cost, training time."""
    rows = []
    for key, m in results.methods.items():
        for t in results.time_labels:  # time order (a results.json read back has its keys sorted)
            gap, a = m.gap[t].to_dict(), m.accuracy[t].to_dict()
            rows.append({
                "preset": results.preset.name, "method": key, "label": m.label, "time": t,
                "chips": a["n"], "acc_mean": a["mean"], "acc_std": a["std"],
                "acc_ci95_low": a["ci95_low"], "acc_ci95_high": a["ci95_high"],
                "gap_mean": gap["mean"], "gap_ci95_low": gap["ci95_low"], "gap_ci95_high": gap["ci95_high"],
                "clean_acc": m.clean_accuracy, "verified_fraction": m.verified_fraction,
                "pulses": m.cost["pulses"], "reads": m.cost["reads"],
                "program_time_s": m.cost["time_s"], "program_energy_j": m.cost["energy_j"],
                "train_time_s": m.train_time_s,
                "energy_per_inference_nj": 1e9 * m.inference_cost.energy_j,
                "latency_us": 1e6 * m.inference_cost.latency_s,
                "tile_mvms": m.inference_cost.tile_mvms,
            })
    return rows


def chip_rows(results: StudyResult) -> Sequence[CsvRow]:
    """One CSV row per (method, chip, time): the raw Monte-Carlo samples."""
    rows = []
    for key, m in results.methods.items():
        for chip, accs in enumerate(m.per_chip):
            for t, a in zip(results.time_labels, accs):
                rows.append({"preset": results.preset.name, "method": key, "chip": chip, "time": t,
                             "accuracy": a})
    return rows


def _summary_point(m: MethodResult, t: str) -> dict[str, float]:
    a = m.accuracy[t]
    return {"fraction": m.verified_fraction, "mean": a.mean, "ci_low": a.ci95_low, "ci_high": a.ci95_high}


def write_plots(results: StudyResult, out: Path) -> list[Path]:
    """Accuracy vs time (when there are several times) and accuracy vs verified fraction."""
    methods = results.methods
    ref = results.reference_accuracy
    times = results.time_labels
    preset = results.preset.name
    files: list[Path] = []
    if len(times) > 1:
        series = {m.label: time_series(m.per_chip, results.times) for m in methods.values() if not m.curve}
        files += plot_accuracy_vs_time(series, out / "accuracy_vs_time", reference=ref,
                                       title=f"{results.model} on {preset}: accuracy over time")
    t0 = times[0]
    curves: dict[str, dict[str, list[float]]] = {}
    for m in methods.values():
        if m.curve:
            c = curves.setdefault(m.curve, {"fraction": [], "mean": [], "ci_low": [], "ci_high": []})
            p = _summary_point(m, t0)
            for k in c:
                c[k].append(p[k])
    base = methods.get("full_noise_injection")
    for c in curves.values():  # anchor every selective curve at one-shot (0) and full verify (1)
        pts: list[tuple[float, ...]] = sorted(zip(c["fraction"], c["mean"], c["ci_low"], c["ci_high"]))
        if base:
            pts.insert(0, tuple(_summary_point(base, t0).values()))
        if "full_verify" in methods:
            pts.append(tuple(_summary_point(methods["full_verify"], t0).values()))
        c.update(fraction=[p[0] for p in pts], mean=[p[1] for p in pts], ci_low=[p[2] for p in pts],
                 ci_high=[p[3] for p in pts])
    points = {methods[k].label: _summary_point(methods[k], t0)
              for k in ("tsb", "tsb_generic", "tsb_clean", "bn_recalibration", "backbone_early") if k in methods}
    files += plot_accuracy_vs_verified_fraction(curves, points, out / "accuracy_vs_verified_fraction", reference=ref,
                                                title=f"{results.model} on {preset} at t={t0}")
    return files


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def _convergence_line(r: StudyResult) -> str:
    """(b)'s convergence as issue 34 defines it: what the last 10% of its epochs added on validation."""
    meta = r.training.get("backbone_full")
    gain = meta.val_gain_over_last(0.1) if meta else None
    if meta is None or gain is None:
        return "- convergence of (b): no per-epoch validation history recorded"
    pp, tail = 100 * gain[0], gain[1]
    verdict = "converged (< 0.3 pp)" if pp < 0.3 else "still improving (>= 0.3 pp)"
    epochs = len(meta.history or [])
    return f"- convergence of (b): its last {tail} of {epochs} epochs (about 10%) changed validation accuracy by " \
           f"{pp:+.2f} pp: {verdict}"


def report_markdown(studies: Sequence[StudyResult], command: str) -> str:
    """The study report: setup, per-method table per preset, and the claims beside the paper's."""
    lines = ["# TSB study report", "", f"Command: `{command}`", ""]
    for r in studies:
        cfg = r.config
        labels = r.time_labels
        lines += [f"## {r.model} on {r.dataset.name}, preset `{r.preset.name}`", "",
                  f"- data: {r.dataset.split_note}; evaluated on {r.dataset.eval_size} test images",
                  f"- chips: {cfg['chips']} (Monte-Carlo; mean ± std and 95% CI over chips), seed {cfg['seed']}",
                  f"- reference (gap = reference − accuracy): clean digital accuracy of the fully trained "
                  f"noise-injection baseline (b) = {_pct(r.reference_accuracy)}%",
                  f"- backbone epochs: full {cfg['backbone']['full_epochs']}, early {cfg['backbone']['early_epochs']}; "
                  f"block: k={r.tsb.k}, {r.tsb.sites} sites, {r.tsb.weights} weights, "
                  f"{cfg['block']['epochs']} epochs per chip"]
        lines += [_convergence_line(r), ""]
        head = "| method | verified % | pulses | train s | " + " | ".join(f"acc@{t} (%)" for t in labels)
        head += f" | gap@{labels[0]} (pp) |"
        lines += [head, "|" + "---|" * (5 + len(labels))]
        for m in r.methods.values():
            accs = " | ".join(f"{100 * m.accuracy[t].mean:.2f} ± {100 * m.accuracy[t].std:.2f}" for t in labels)
            g = m.gap[labels[0]]
            lines.append(f"| {m.label} | {100 * m.verified_fraction:.3f} | {m.cost['pulses']:,.0f} | "
                         f"{m.train_time_s:.1f} | {accs} | {100 * g.mean:.2f} [{100 * g.ci95_low:.2f}, "
                         f"{100 * g.ci95_high:.2f}] |")
        c = r.claims
        lines += ["", "| claim | paper | measured here |", "|---|---|---|"]
        for name, claim in c.headline().items():
            lines.append(f"| {name} | {PAPER[name]} | {format_claim(claim)} |")
        gi = c.accuracy_gap_improvement
        if gi:
            lines += ["", "Gap improvement by time: " + ", ".join(
                f"{t}: {format_claim(v)}" for t, v in gi.by_time.items())]
            lines += [f"Note: {gi.note}."]
        mc = c.mapping_cost_reduction
        if mc and mc.verify_overhead_reduction:
            lines += [f"Verify overhead alone (pulses beyond one per device): {mc.verify_overhead_reduction:.0f}x "
                      f"fewer for TSB than full write-verify."]
        lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in r.plots), ""]
    return "\n".join(lines) + "\n"


def write_tables(results: StudyResult, out: Path) -> None:
    atomic_write_csv(out / "methods.csv", method_rows(results))
    atomic_write_csv(out / "chips.csv", chip_rows(results))


def write_report(studies: Sequence[StudyResult], out: Path, command: str) -> Path:
    return atomic_write_text(out / "report.md", report_markdown(studies, command))
