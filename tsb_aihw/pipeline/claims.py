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

from typing import Mapping

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.pipeline.definitions import claims_by_definition
from tsb_aihw.records import MethodResult
from tsb_aihw.records.claims import (
    Claim,
    GapImprovementClaim,
    GapRatio,
    MappingCostClaim,
    SpeedupUnits,
    StudyClaims,
    TrainingSpeedupClaim,
    VerifiedFractionClaim,
)

PAPER = {
    "accuracy_gap_improvement": "> 20x",
    "training_speedup": "> 5x",
    "verified_fraction": "< 0.4%",
    "mapping_cost_reduction": "'far lower' (no number in the abstract)",
}


def gap_ratio(base_summary: Summary, tsb_summary: Summary) -> GapRatio:
    """Ratio of two gap summaries (each with mean and 95% CI), honest about Monte-Carlo error."""
    base, tsb = base_summary, tsb_summary
    written_base, written_tsb = base.to_dict(), tsb.to_dict()  # as written: an undefined CI is None

    def ratio(kind: str, value: float | None, note: str, range95: list[float] | None = None) -> GapRatio:
        return GapRatio(baseline_gap=base.mean, tsb_gap=tsb.mean,
                        tsb_gap_ci95=[written_tsb["ci95_low"], written_tsb["ci95_high"]],
                        baseline_gap_ci95=[written_base["ci95_low"], written_base["ci95_high"]],
                        kind=kind, value=value, note=note, range95=range95)

    if base.ci95_low <= 0:
        return ratio("undefined", None, "the baseline's gap is within Monte-Carlo error of zero: nothing to improve on")
    if tsb.ci95_high <= 0:
        return ratio("unbounded", None,
                     "TSB is at or above the reference accuracy on every plausible chip mean: ratio unbounded")
    if tsb.ci95_low <= 0:
        return ratio("lower_bound", base.mean / tsb.ci95_high,
                     "TSB gap within Monte-Carlo error of zero: ratio reported as a lower bound")
    return ratio("estimate", base.mean / tsb.mean,
                 "ratio of mean gaps; range95 divides by the ends of the TSB gap's 95% CI",
                 [base.mean / tsb.ci95_high, base.mean / tsb.ci95_low])


def compute_claims(methods: Mapping[str, MethodResult], time_labels: list[str], *,
                   speedup: SpeedupUnits | None = None) -> StudyClaims:
    """Claims from the per-method results (``speedup``: the training speed-up in image-passes, see
    :func:`tsb_aihw.pipeline.definitions.speedup_units`; without it ``claims_by_definition`` reports the wall-clock
    ratio only)."""
    base, tsb, full = methods.get("full_noise_injection"), methods.get("tsb"), methods.get("full_verify")
    by_definition, gap, train = None, None, None
    if base and tsb:
        by_time = {t: gap_ratio(base.gap[t], tsb.gap[t]) for t in time_labels}
        t0 = time_labels[0]  # the one reference, as every gap was built: (b)'s accuracy + its gap
        reference = base.accuracy[t0].mean + base.gap[t0].mean
        by_definition = claims_by_definition(methods, reference, time_labels, speedup=speedup)
        gap = GapImprovementClaim(headline_time=t0, **vars(by_time[t0]), by_time=by_time)
        tsb_time = tsb.train_time_s
        train = TrainingSpeedupClaim(value=base.train_time_s / tsb_time if tsb_time > 0 else None,
                                     baseline_s=base.train_time_s, tsb_s=tsb_time,
                                     tsb_backbone_s=tsb.backbone_time_s, tsb_block_s_per_chip=tsb.block_time_s)
    fraction = None if tsb is None else VerifiedFractionClaim(
        value=tsb.verified_fraction, paper_bound=0.004, below_paper_bound=tsb.verified_fraction < 0.004)
    mapping = None
    if tsb and full:
        p_full, p_tsb = full.cost["pulses"], tsb.cost["pulses"]
        extra_full = p_full - full.cost["devices"]  # one-shot costs one pulse per device
        extra_tsb = p_tsb - tsb.cost["devices"]
        mapping = MappingCostClaim(
            value=p_full / p_tsb if p_tsb else None, full_verify_pulses=p_full, tsb_pulses=p_tsb,
            verify_overhead_reduction=(extra_full / extra_tsb) if extra_tsb > 0 else None,
            note="pulses count device operations, one per one-shot device; verify_overhead_reduction counts only "
                 "the pulses beyond one per device")
    return StudyClaims(paper=dict(PAPER), claims_by_definition=by_definition, accuracy_gap_improvement=gap,
                       training_speedup=train, verified_fraction=fraction, mapping_cost_reduction=mapping)


def format_claim(claim: Claim | None) -> str:
    """One readable cell for the report table."""
    if claim is None:
        return "not measured"
    v = claim.value
    if isinstance(claim, VerifiedFractionClaim):
        return f"{100 * v:.3f}%"
    if isinstance(claim, GapRatio):
        if claim.kind == "lower_bound":
            return f">= {v:.1f}x (TSB gap within MC error of 0)"
        if claim.kind == "unbounded":
            return "unbounded (TSB at/above reference)"
        if claim.kind == "undefined":
            return "undefined (baseline gap ~ 0)"
        assert claim.range95 is not None  # an estimate has its range
        lo, hi = claim.range95
        return f"{v:.1f}x (95% range {lo:.1f}-{hi:.1f}x)"
    return "n/a" if v is None else f"{v:.2f}x"
