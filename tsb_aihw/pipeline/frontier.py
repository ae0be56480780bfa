"""Where TSB's claims hold: training speed-up vs accuracy-gap improvement over the early backbone's budget.

The paper claims a >20x smaller accuracy gap and a >5x training speed-up at once; both hinge on one knob, the
budget of the "early convergence" backbone. ``run_frontier`` runs one study per budget (a fraction of
``backbone.full_epochs``) on the same chips, in one output directory and one result store: the fully trained
baseline (b), its baselines and the ``tsb_full`` variant do not depend on the early budget, so their cells are
computed once and reused at every budget. Each TSB variant gives one frontier point per budget:

- speed-up = training time of (b) / (the variant's backbone time + its mean per-chip block time);
- gap improvement = gap of (b) / gap of the variant, both against ONE reference (the clean accuracy of (b)),
  with the honest bounds of :func:`tsb_aihw.pipeline.claims.gap_ratio`.

Baselines (selective write-verify at TSB's fraction and 10x it, BN recalibration, full write-verify) are points at
speed-up 1 (they deploy (b)). Outputs: ``frontier.json``, ``frontier.csv``, ``frontier.png|pdf``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tsb_aihw.errors import ConfigError
from tsb_aihw.parallel.executor import Executor
from tsb_aihw.pipeline.adopt import check_sources
from tsb_aihw.pipeline.claims import gap_ratio
from tsb_aihw.pipeline.config import StudyConfig, check_bn_variant
from tsb_aihw.pipeline.methods import BASE_METHODS, VARIANTS
from tsb_aihw.pipeline.study import deploy_study, study_identity
from tsb_aihw.records import FrontierPoint, FrontierResult, StudyResult
from tsb_aihw.records.frontier import BestAt5x, FrontierVerdict
from tsb_aihw.utils.io import CsvRow, JsonObject, atomic_write_csv, atomic_write_json
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.schema import spec
from tsb_aihw.utils.store import ResultStore

VARIANT_CHOICES = ("tsb", *VARIANTS)
BASELINES = ("full_noise_injection", "full_verify", "bn_recalibration", "selective_verify")
#: baselines a frontier may add to :data:`BASELINES`: vanilla trains one more backbone ((b) at σ = 0)
OPTIONAL_BASELINES = ("vanilla",)
PAPER_REGION = {"speedup": 5.0, "gap_improvement": 20.0}


@dataclass
class FrontierConfig(StudyConfig):
    """A study config plus the backbone budgets (fractions of ``backbone.full_epochs``) and the TSB variants.

    ``backbone.early_epochs`` is set by each budget (``early_epochs``); ``methods`` are the variants plus the
    baselines of :data:`BASELINES`."""

    budgets: list[float] = spec(lo=0.0, lo_open=True, hi=1.0, factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0])
    # tsb_bn / tsb_full_bn: the paper's flow (tsb / tsb_full with block.recalibrate_bn: false) against BN re-estimated
    # first
    variants: list[str] = spec(choices=VARIANT_CHOICES, what="TSB variant", factory=lambda: ["tsb", "tsb_full"])
    # baselines deployed beside :data:`BASELINES` (points at budget 1; they only add cells)
    extra_baselines: list[str] = spec(choices=OPTIONAL_BASELINES, what="optional baseline", factory=list)

    def validate(self) -> "FrontierConfig":
        self.backbone.early_epochs = self.backbone.full_epochs  # each budget sets its own (budget_config)
        check_bn_variant(self.variants, self.block, "variants")
        super().validate()
        if not self.budgets or not self.variants:
            raise ConfigError("budgets and variants must each name at least one value")
        epochs = [early_epochs(self, b) for b in self.budgets]
        if len(set(epochs)) != len(epochs):
            raise ConfigError(f"budgets {self.budgets} give repeated early epochs {epochs} of full_epochs "
                              f"{self.backbone.full_epochs}; give budgets that differ by at least one epoch")
        return self


def early_epochs(cfg: StudyConfig, budget: float) -> int:
    """The early backbone's epochs at ``budget`` (a fraction of the full budget, at least one epoch)."""
    return max(1, round(budget * cfg.backbone.full_epochs))


def budget_config(cfg: FrontierConfig, budget: float) -> StudyConfig:
    """The study of one budget: the frontier's config with that early budget, the variants and baselines."""
    from tsb_aihw.pipeline.config import study_config_from_dict

    raw = cfg.to_dict()
    for k in ("budgets", "variants", "extra_baselines"):
        raw.pop(k)
    raw["backbone"]["early_epochs"] = early_epochs(cfg, budget)
    if cfg.backbone.early_from == "stop":  # (b), trained once for every budget, keeps each budget's stop
        full = cfg.backbone.full_epochs
        epochs = [early_epochs(cfg, b) for b in cfg.budgets]
        raw["backbone"]["stops"] = sorted({*cfg.backbone.stops, *(e / full for e in epochs if e < full)})
    raw["methods"] = [*BASELINES, *cfg.extra_baselines, *cfg.variants]
    raw["selective"] = dict(raw["selective"], fraction_multipliers=[1.0, 10.0], extra_fractions=[])
    return study_config_from_dict(raw, f"frontier budget {budget:g}")


def frontier_identity(cfg: FrontierConfig) -> JsonObject:
    """The frontier's store identity: its config minus chips, budgets, variants and baselines (those only add
    cells)."""
    ident = study_identity(cfg, "frontier")
    for k in ("budgets", "variants", "extra_baselines", "methods"):
        ident["config"].pop(k, None)
    return ident


def run_frontier(cfg: FrontierConfig, out: str | Path, progress: bool = True, executor: Executor | None = None,
                 threads: int | None = None, move_aside: bool = False,
                 models_from: Sequence[str | Path] = ()) -> FrontierResult:
    """Run (or resume) every budget's study into one store and write the frontier files into ``out``
    (``models_from``: finished runs or exported folders whose trained models are taken, as in ``run_study``)."""
    from tsb_aihw.plots import plot_frontier

    t0 = time.perf_counter()
    cfg.validate()
    check_sources(models_from)
    store = ResultStore(out, "frontier", frontier_identity(cfg), move_aside=move_aside)
    studies: dict[str, StudyResult] = {}
    for budget in sorted(cfg.budgets):
        studies[f"{budget:g}"] = deploy_study(budget_config(cfg, budget), store, progress, executor, threads,
                                              desc=f"frontier budget {budget:g}", models_from=models_from)
    result = assemble_frontier(cfg, studies)
    result = dataclasses.replace(result, wall_time_s=time.perf_counter() - t0)
    result = dataclasses.replace(result, plots=[p.name for p in plot_frontier(result, store.out / "frontier")])
    atomic_write_csv(store.out / "frontier.csv", frontier_rows(result))
    atomic_write_json(store.out / "frontier.json", result.to_dict())
    return result


def _point(study: StudyResult, key: str, **curve: Any) -> FrontierPoint:
    """``key``'s point of one budget's study (``curve``: a variant's budget, backbone and early epochs)."""
    base, m = study.methods["full_noise_injection"], study.methods[key]
    t = study.time_labels[0]
    ratio = gap_ratio(base.gap[t], m.gap[t])
    return FrontierPoint(method=key, label=m.label, speedup=base.train_time_s / m.train_time_s,
                         gap_improvement=ratio.value, gap_improvement_kind=ratio.kind,
                         gap_improvement_range95=ratio.range95, gap=m.gap[t], baseline_gap=base.gap[t],
                         accuracy=m.accuracy[t], verified_fraction=m.verified_fraction, time=t, **curve)


def assemble_frontier(cfg: FrontierConfig, studies: dict[str, StudyResult]) -> FrontierResult:
    """Per variant, one point per budget; baselines as points; where (>5x, >20x) holds, if anywhere."""
    curves: dict[str, list[FrontierPoint]] = {}
    for budget, study in studies.items():
        for key in cfg.variants:
            backbone = BASE_METHODS[key].backbone  # tsb_full's block sits on (b): its backbone is the full one
            epochs = study.config["backbone"]["early_epochs" if backbone == "early" else "full_epochs"]
            curves.setdefault(key, []).append(_point(study, key, budget=float(budget), backbone=backbone,
                                                     early_epochs=epochs))
    last = studies[max(studies, key=float)]
    baselines = [_point(last, k) for k in last.methods if k not in cfg.variants and k != "full_noise_injection"]
    points = [p for c in curves.values() for p in c]
    both = [p for p in points if p.speedup > PAPER_REGION["speedup"]
            and (p.gap_improvement or 0) > PAPER_REGION["gap_improvement"]]
    best_fast = max((p for p in points if p.speedup >= PAPER_REGION["speedup"]),
                    key=lambda p: p.gap_improvement or 0, default=None)
    at20 = [p for p in points if (p.gap_improvement or 0) >= PAPER_REGION["gap_improvement"]]
    return FrontierResult(
        config=cfg.to_dict(), seed=cfg.seed, provenance=provenance(), model=cfg.model.name,
        dataset=cfg.data.name, preset=last.preset.name, chips=cfg.chips,
        reference_accuracy=last.reference_accuracy, reference_definition=last.reference_definition,
        curves=curves, baselines=baselines, paper_region=PAPER_REGION,
        verdict=FrontierVerdict(
            both_claims_hold_at=[{"method": p.method, "budget": p.budget} for p in both if p.budget is not None],
            best_gap_improvement_at_5x=None if best_fast is None or best_fast.budget is None else BestAt5x(
                method=best_fast.method, budget=best_fast.budget, speedup=best_fast.speedup,
                gap_improvement=best_fast.gap_improvement, kind=best_fast.gap_improvement_kind),
            max_speedup_with_20x=max((p.speedup for p in at20), default=None)),
        studies={b: s.slim() for b, s in studies.items()},
    )


def frontier_rows(result: FrontierResult) -> Sequence[CsvRow]:
    rows = []
    for key, pts in result.curves.items():
        for p in pts:
            rows.append({"method": key, "budget": p.budget, "early_epochs": p.early_epochs,
                         "speedup": p.speedup, "gap_improvement": p.gap_improvement,
                         "kind": p.gap_improvement_kind, "acc_mean": p.accuracy.mean,
                         "gap_mean": p.gap.mean, "gap_ci95_low": p.gap.ci95_low,
                         "gap_ci95_high": p.gap.ci95_high, "verified_fraction": p.verified_fraction})
    for p in result.baselines:
        rows.append({"method": p.method, "budget": 1.0, "speedup": p.speedup,
                     "gap_improvement": p.gap_improvement, "kind": p.gap_improvement_kind,
                     "acc_mean": p.accuracy.mean, "gap_mean": p.gap.mean,
                     "verified_fraction": p.verified_fraction})
    return rows
