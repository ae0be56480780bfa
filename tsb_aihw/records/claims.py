"""The gap-improvement claim under every definition a reader might use (issue 31), with paired-bootstrap CIs.

Written under ``claims["claims_by_definition"]`` of a study (and of each frontier budget's study), and by
``tsb-aihw claims`` as ``claims_by_definition.json`` beside committed results. Computed by
:func:`tsb_aihw.pipeline.definitions.claims_by_definition`; these records only hold what it found.
"""
from __future__ import annotations

from dataclasses import dataclass

from tsb_aihw.records.base import Record
from tsb_aihw.utils.schema import spec

#: the definitions, in the order they are reported
DEFINITIONS = ("one_reference", "own_reference", "worst_chip", "p5", "vanilla_baseline")
KINDS = ("estimate", "lower_bound", "unbounded", "undefined")


@dataclass(frozen=True, kw_only=True)
class DefinitionClaim(Record):
    """(b)'s gap / the TSB method's gap under one definition, at the headline time.

    ``gap_improvement``: the point estimate (``kind`` estimate), or the lower CI end (``kind`` lower_bound: the
    TSB gap's bootstrap CI reaches 0, so the ratio has no upper end), or None (unbounded / undefined / not
    available). ``ci95``: the paired-bootstrap percentile interval of the ratio; its upper end is None where it is
    infinite. ``holds_20x``: the ratio's CI lower end > 20 (unbounded counts as holding)."""

    definition: str = spec(choices=DEFINITIONS)
    description: str
    available: bool
    reason: str | None = spec(None, omit_none=True)  # why not available
    baseline_reference: float | None = None  # the accuracy (b)'s gap is measured against
    tsb_reference: float | None = None  # the accuracy the TSB method's gap is measured against
    reference_source: str | None = spec(None, omit_none=True)  # where a reference not in this result came from
    baseline_gap: float | None = None  # point estimates (fractions, not pp)
    tsb_gap: float | None = None
    baseline_gap_ci95: list[float] | None = None
    tsb_gap_ci95: list[float] | None = None
    gap_improvement: float | None = None
    ci95: list[float | None] | None = None
    kind: str | None = spec(None, choices=KINDS)
    point_above_20x: bool | None = None
    holds_20x: bool | None = None
    note: str | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class SpeedupUnits(Record):
    """TSB's training speed-up over (b): wall clock (as ``training_speedup``) and in training image-passes.

    An image-pass is one image through one training step (forward and backward): (b) = full epochs x training
    images; TSB = early epochs x training images + block epochs x block images (per chip). A block step
    back-propagates only through the layers after the first block site, over a frozen backbone, so it costs at
    most one backbone image-pass: the image-pass speed-up is a lower bound on the FLOP speed-up of training."""

    wall_clock: float | None
    baseline_s: float | None = None
    tsb_s: float | None = None
    image_passes: float | None = None
    baseline_image_passes: int | None = None
    tsb_image_passes: int | None = None  # backbone + one chip's block
    tsb_backbone_image_passes: int | None = None
    tsb_block_image_passes_per_chip: int | None = None
    train_images: int | None = None
    block_images: int | None = None
    baseline_epochs: int | None = None
    early_epochs: int | None = None
    block_epochs: int | None = None
    # (b) stopped at the first epoch whose validation accuracy is within 0.5 pp of its last epoch's
    baseline_epochs_to_final_0p5pp: int | None = None
    image_passes_to_final_0p5pp: float | None = None
    holds_5x_wall_clock: bool | None = None
    holds_5x_image_passes: bool | None = None
    reason: str | None = spec(None, omit_none=True)  # why the image-pass figures are missing
    note: str | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class ClaimsByDefinition(Record):
    """Every definition's claim for one TSB method against (b), on the same chips paired by index."""

    method: str
    baseline: str
    time: str
    chips: int = spec(lo=1)
    resamples: int = spec(lo=1)
    bootstrap_seed: int
    ci_method: str
    holds_20x_rule: str
    definitions: dict[str, DefinitionClaim]
    training_speedup: SpeedupUnits


@dataclass(frozen=True, kw_only=True)
class ClaimsFile(Record):
    """``claims_by_definition.json``: the claims of one committed study (``methods``: per TSB method) or frontier
    (``budgets``: per budget, per TSB method), re-scored from its stored chips, with what the table's head shows."""

    source: str  # the results.json / frontier.json scored, relative to the repository root where it lies inside
    model: str
    sigma: float | None  # the config's noise.sigma override (None: the preset's own)
    preset: str | None
    reference_accuracy: float
    methods: dict[str, ClaimsByDefinition] | None = spec(None, omit_none=True)  # a study
    budgets: dict[str, dict[str, ClaimsByDefinition]] | None = spec(None, omit_none=True)  # a frontier
    command: str | None = spec(None, omit_none=True)  # the command that wrote the file

    def rows(self) -> dict[str, ClaimsByDefinition]:
        """Every method's claims, labelled ``method`` (a study) or ``budget/method`` (a frontier)."""
        out = dict(self.methods or {})
        for budget, methods in (self.budgets or {}).items():
            out |= {f"{budget}/{m}": c for m, c in methods.items()}
        return out


@dataclass(frozen=True, kw_only=True)
class GapRatio(Record):
    """(b)'s gap / TSB's gap at one time from the two gap summaries, honest about Monte-Carlo error: ``value`` is
    the ratio of means (``kind`` estimate, with ``range95``), its lower bound, or None (unbounded / undefined)."""

    baseline_gap: float
    tsb_gap: float
    tsb_gap_ci95: list[float | None]  # None: an undefined CI (one chip)
    baseline_gap_ci95: list[float | None]
    kind: str = spec(choices=KINDS)
    value: float | None
    note: str
    range95: list[float] | None = spec(None, omit_none=True)  # estimates only


@dataclass(frozen=True, kw_only=True)
class GapImprovementClaim(GapRatio):
    """The headline gap improvement (the first time's ratio) and the ratio at every time."""

    headline_time: str
    by_time: dict[str, GapRatio]


@dataclass(frozen=True, kw_only=True)
class TrainingSpeedupClaim(Record):
    """(b)'s training wall clock / TSB's (early backbone + mean per-chip block)."""

    value: float | None  # None: TSB took no measurable time
    baseline_s: float
    tsb_s: float
    tsb_backbone_s: float | None  # per-chip block methods only
    tsb_block_s_per_chip: float | None


@dataclass(frozen=True, kw_only=True)
class VerifiedFractionClaim(Record):
    """TSB's write-verified weights / backbone weights, against the paper's bound."""

    value: float = spec(lo=0.0, hi=1.0)
    paper_bound: float
    below_paper_bound: bool


@dataclass(frozen=True, kw_only=True)
class MappingCostClaim(Record):
    """Programming pulses of full write-verify (c) / TSB's, and the same for the pulses beyond one per device."""

    value: float | None
    full_verify_pulses: int | float
    tsb_pulses: int | float
    verify_overhead_reduction: float | None
    note: str


#: one headline claim as the report prints it
Claim = GapRatio | TrainingSpeedupClaim | VerifiedFractionClaim | MappingCostClaim


@dataclass(frozen=True, kw_only=True)
class StudyClaims(Record):
    """A study's claims (``claims`` of results.json): the paper's wording, each claim measured where the study ran
    the methods it needs (absent else), and the gap improvement under every definition (studies since issue 31)."""

    paper: dict[str, str]
    claims_by_definition: ClaimsByDefinition | None = spec(None, omit_none=True)
    accuracy_gap_improvement: GapImprovementClaim | None = spec(None, omit_none=True)
    training_speedup: TrainingSpeedupClaim | None = spec(None, omit_none=True)
    verified_fraction: VerifiedFractionClaim | None = spec(None, omit_none=True)
    mapping_cost_reduction: MappingCostClaim | None = spec(None, omit_none=True)

    def headline(self) -> dict[str, Claim | None]:
        """Each headline claim by name, in the order they are reported (None: not measured)."""
        return {"accuracy_gap_improvement": self.accuracy_gap_improvement,
                "training_speedup": self.training_speedup, "verified_fraction": self.verified_fraction,
                "mapping_cost_reduction": self.mapping_cost_reduction}
