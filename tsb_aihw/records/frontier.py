"""A frontier's results (``frontier.json``): TSB's speed-up against its gap improvement, one point per budget."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records.base import Record
from tsb_aihw.records.study import FrontierStudy
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.provenance import Provenance
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class FrontierPoint(Record):
    """One method at one budget: speed-up over (b) and gap improvement over (b), at the first time."""

    method: str
    label: str
    speedup: float = spec(lo=0.0)
    gap_improvement: float | None  # None: undefined or unbounded (see the kind)
    gap_improvement_kind: str
    gap_improvement_range95: list[float] | None
    gap: Summary
    baseline_gap: Summary
    accuracy: Summary
    verified_fraction: float = spec(lo=0.0, hi=1.0)
    time: str
    # a TSB variant's curve point (baselines have none): the budget and the backbone it deploys
    budget: float | None = spec(None, omit_none=True)
    backbone: str | None = spec(None, omit_none=True)
    early_epochs: int | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class BestAt5x(Record):
    method: str
    budget: float
    speedup: float
    gap_improvement: float | None
    kind: str


@dataclass(frozen=True, kw_only=True)
class FrontierVerdict(Record):
    """Where the paper's two claims hold at once, if anywhere."""

    both_claims_hold_at: list[dict[str, str | float]]  # {method, budget}
    best_gap_improvement_at_5x: BestAt5x | None
    max_speedup_with_20x: float | None


@dataclass(frozen=True, kw_only=True)
class FrontierResult(Record):
    """``frontier.json``."""

    config: JsonObject  # FrontierConfig.to_dict()
    seed: int
    provenance: Provenance
    model: str
    dataset: str
    preset: str
    chips: int = spec(lo=1)
    reference_accuracy: float = spec(lo=0.0, hi=1.0)
    reference_definition: str
    curves: dict[str, list[FrontierPoint]]
    baselines: list[FrontierPoint]
    paper_region: dict[str, float]
    verdict: FrontierVerdict
    studies: dict[str, FrontierStudy]  # per budget
    plots: list[str] = field(default_factory=list)
    wall_time_s: float | None = spec(None, omit_none=True)
