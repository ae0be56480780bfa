"""The paper's headline claims, computed from a study's results with their Monte-Carlo uncertainty.

Definitions (docs/design.md, "Claims"):
- ``accuracy_gap_improvement`` = gap of baseline (b) / gap of TSB, both gaps measured against ONE reference:
  the clean digital accuracy of (b). When the TSB gap cannot be told from zero (its 95% CI reaches 0), the
  ratio is reported as a lower bound: gap(b) / upper CI end of gap(TSB).
- ``training_speedup`` = training time of (b) / (early backbone time + mean per-chip block training time).
- ``verified_fraction`` = TSB's write-verified weights / backbone weights.
- ``mapping_cost_reduction`` = programming pulses of full write-verify (c) / programming pulses of TSB.
- ``claims_by_definition``: the gap improvement under every other definition a reader might use (own reference,
  worst chip, 5th-percentile chip, ...) with paired-bootstrap CIs: :mod:`tsb_aihw.pipeline.definitions`.
"""
from __future__ import annotations

from typing import Any, Mapping

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.pipeline.definitions import claims_by_definition
from tsb_aihw.records import MethodResult
from tsb_aihw.records.claims import SpeedupUnits

PAPER = {
    "accuracy_gap_improvement": "> 20x",
    "training_speedup": "> 5x",
    "verified_fraction": "< 0.4%",
    "mapping_cost_reduction": "'far lower' (no number in the abstract)",
}


def gap_ratio(base_summary: Summary, tsb_summary: Summary) -> dict[str, Any]:
    """Ratio of two gap summaries (each with mean and 95% CI), honest about Monte-Carlo error."""
    gap_base, gap_tsb = base_summary.to_dict(), tsb_summary.to_dict()  # as written: an undefined CI is None
    out: dict[str, Any] = {"baseline_gap": gap_base["mean"], "tsb_gap": gap_tsb["mean"],
                           "tsb_gap_ci95": [gap_tsb["ci95_low"], gap_tsb["ci95_high"]],
                           "baseline_gap_ci95": [gap_base["ci95_low"], gap_base["ci95_high"]]}
    if gap_base["ci95_low"] <= 0:
        out.update(kind="undefined", value=None,
                   note="the baseline's gap is within Monte-Carlo error of zero: nothing to improve on")
    elif gap_tsb["ci95_high"] <= 0:
        out.update(kind="unbounded", value=None,
                   note="TSB is at or above the reference accuracy on every plausible chip mean: ratio unbounded")
    elif gap_tsb["ci95_low"] <= 0:
        out.update(kind="lower_bound", value=gap_base["mean"] / gap_tsb["ci95_high"],
                   note="TSB gap within Monte-Carlo error of zero: ratio reported as a lower bound")
    else:
        out.update(kind="estimate", value=gap_base["mean"] / gap_tsb["mean"],
                   range95=[gap_base["mean"] / gap_tsb["ci95_high"], gap_base["mean"] / gap_tsb["ci95_low"]],
                   note="ratio of mean gaps; range95 divides by the ends of the TSB gap's 95% CI")
    return out


def compute_claims(methods: Mapping[str, MethodResult], time_labels: list[str], *,
                   speedup: SpeedupUnits | None = None) -> dict[str, Any]:
    """Claims from the per-method results (``speedup``: the training speed-up in image-passes, see
    :func:`tsb_aihw.pipeline.definitions.speedup_units`; without it ``claims_by_definition`` reports the wall-clock
    ratio only)."""
    claims: dict[str, Any] = {"paper": PAPER}
    base, tsb, full = methods.get("full_noise_injection"), methods.get("tsb"), methods.get("full_verify")
    if base and tsb:
        by_time = {t: gap_ratio(base.gap[t], tsb.gap[t]) for t in time_labels}
        t0 = time_labels[0]  # the one reference, as every gap was built: (b)'s accuracy + its gap
        reference = base.accuracy[t0].mean + base.gap[t0].mean
        claims["claims_by_definition"] = claims_by_definition(methods, reference, time_labels,
                                                              speedup=speedup).to_dict()
        claims["accuracy_gap_improvement"] = {"headline_time": time_labels[0], **by_time[time_labels[0]],
                                              "by_time": by_time}
        tsb_time = tsb.train_time_s
        claims["training_speedup"] = {
            "value": base.train_time_s / tsb_time if tsb_time > 0 else None,
            "baseline_s": base.train_time_s, "tsb_s": tsb_time,
            "tsb_backbone_s": tsb.backbone_time_s, "tsb_block_s_per_chip": tsb.block_time_s,
        }
    if tsb:
        claims["verified_fraction"] = {"value": tsb.verified_fraction, "paper_bound": 0.004,
                                       "below_paper_bound": tsb.verified_fraction < 0.004}
    if tsb and full:
        p_full, p_tsb = full.cost["pulses"], tsb.cost["pulses"]
        extra_full = p_full - full.cost["devices"]  # one-shot costs one pulse per device
        extra_tsb = p_tsb - tsb.cost["devices"]
        claims["mapping_cost_reduction"] = {
            "value": p_full / p_tsb if p_tsb else None, "full_verify_pulses": p_full, "tsb_pulses": p_tsb,
            "verify_overhead_reduction": (extra_full / extra_tsb) if extra_tsb > 0 else None,
            "note": "pulses count device operations, one per one-shot device; verify_overhead_reduction counts "
                    "only the pulses beyond one per device",
        }
    return claims


def format_claim(name: str, claim: Mapping[str, Any] | None) -> str:
    """One readable cell for the report table."""
    if not claim:
        return "not measured"
    v = claim.get("value")
    if name == "verified_fraction":
        return f"{100 * v:.3f}%"
    if name == "accuracy_gap_improvement":
        kind = claim.get("kind")
        if kind == "lower_bound":
            return f">= {v:.1f}x (TSB gap within MC error of 0)"
        if kind == "unbounded":
            return "unbounded (TSB at/above reference)"
        if kind == "undefined":
            return "undefined (baseline gap ~ 0)"
        lo, hi = claim["range95"]
        return f"{v:.1f}x (95% range {lo:.1f}-{hi:.1f}x)"
    return "n/a" if v is None else f"{v:.2f}x"
