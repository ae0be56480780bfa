"""A study's results (``results.json``): one :class:`MethodResult` per deployment method on the same chips."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records.base import DatasetRecord, PresetRecord, Record, RunHeader, accuracy_field
from tsb_aihw.records.claims import StudyClaims
from tsb_aihw.records.models import ModelArgs
from tsb_aihw.records.training import TrainingMeta
from tsb_aihw.utils.provenance import Provenance
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class InferenceCostSummary(Record):
    """One inference of a method's deployed model (TSB's block sites included), and what priced each figure."""

    energy_j: float = spec(lo=0.0)
    latency_s: float = spec(lo=0.0)
    tile_mvms: int = spec(lo=0)
    # component -> model that priced it (tsb_aihw.analog.cost); files written before the cost models lack it
    priced_by: dict[str, str] | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class MethodResult(Record):
    """One method over the study's chips: what it deploys, its accuracy and gap per time (summaries over chips
    and the raw per-chip numbers with the chips' fingerprints), its programming and inference cost, and the
    training time it needs (mean per-chip block time included)."""

    label: str
    backbone: str
    block: str | None
    verify: str
    selection: list[str | float] | None
    curve: str | None
    verified_fraction: float = spec(lo=0.0, hi=1.0)
    cost: dict[str, int | float]  # programming cost, mean over chips (pulses, reads, energy, ...)
    clean_accuracy: float | None = accuracy_field()  # None: a per-chip block has no single digital model
    train_time_s: float = spec(lo=0.0)
    cell_time_s: float | None = spec(None, lo=0.0, omit_none=True)  # mean wall time of one chip's cell
    accuracy: dict[str, Summary]
    gap: dict[str, Summary]  # reference accuracy - chip accuracy
    per_chip: list[list[float]] = accuracy_field()  # [chip][time]
    chips: list[str]  # each chip's fingerprint (the programmed backbone's digest)
    inference_cost: InferenceCostSummary
    backbone_time_s: float | None = spec(None, lo=0.0, omit_none=True)  # per-chip block methods only
    block_time_s: float | None = spec(None, lo=0.0, omit_none=True)  # mean per chip; per-chip block methods only


@dataclass(frozen=True, kw_only=True)
class TsbRecord(Record):
    """The shared block of a study's TSB model."""

    k: int = spec(lo=1)
    sites: int | None = spec(None, lo=0, omit_none=True)  # sweeps do not record it
    weights: int = spec(lo=1)
    verified_fraction: float = spec(lo=0.0, hi=1.0)


@dataclass(frozen=True, kw_only=True)
class FrontierStudy(Record):
    """What a frontier keeps of each budget's study."""

    methods: dict[str, MethodResult]
    claims: StudyClaims
    training: dict[str, TrainingMeta]  # by checkpoint name
    tsb: TsbRecord


@dataclass(frozen=True, kw_only=True)
class StudyResult(FrontierStudy, RunHeader):
    """``results.json`` of one study (one preset)."""

    preset: PresetRecord
    model: str
    width: float = spec(lo=0.0, lo_open=True)
    model_args: ModelArgs
    dataset: DatasetRecord
    plots: list[str] = field(default_factory=list)
    wall_time_s: float | None = spec(None, omit_none=True)

    def slim(self) -> FrontierStudy:
        return FrontierStudy(methods=self.methods, claims=self.claims, training=self.training, tsb=self.tsb)


@dataclass(frozen=True, kw_only=True)
class StudiesResult(Record):
    """The combined ``results.json`` of ``tsb-aihw run`` / ``demo``: one study per preset folder."""

    command: str
    provenance: Provenance
    folders: list[str]
    studies: dict[str, StudyResult]
    claims: dict[str, StudyClaims]  # by folder
