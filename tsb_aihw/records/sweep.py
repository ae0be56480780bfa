"""A sweep's results (``sweep.json``): one :class:`SweepPoint` per (axis value, method) over the same chips."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records.base import DatasetRecord, PresetRecord, Record, RunHeader, accuracy_field
from tsb_aihw.records.study import TsbRecord
from tsb_aihw.records.training import TrainingMeta
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class AxisRecord(Record):
    """What a sweep varied, as ``sweep.json`` holds it: :class:`tsb_aihw.sweeps.axes.SweepAxis`'s fields (its
    ``record()`` writes this, ``from_record`` reads it back) plus the axis label and the preset keys it sets."""

    kind: str
    values: list[int | float | str]
    key: str | None
    io: list[str]
    rules: list[str] | None
    points: list[str] | None
    add_tsb_fraction: bool
    name: str
    override_keys: list[str]


@dataclass(frozen=True, kw_only=True)
class SweepPoint(Record):
    """One (axis value, method) of a sweep: the device it ran on and its accuracy over chips."""

    id: str
    axis_value: int | float | str
    role: str  # "curve" (the swept method) or a fixed reference point
    method: str
    label: str
    curve: str | None
    selection: list[str | float] | None
    preset: str
    preset_source: str
    overrides: JsonObject  # the dotted preset keys this point sets, as given
    preset_identity: str
    verified_fraction: float = spec(lo=0.0, hi=1.0)
    cost: dict[str, int | float]
    accuracy: dict[str, Summary]
    per_chip: list[list[float]] = accuracy_field()
    chips: list[str]
    block_time_s: float | None = spec(None, lo=0.0, omit_none=True)  # per-chip block methods only
    # block sweeps only: the block's time in backbone epochs and the paired difference to the config's value
    block_time_over_backbone_epoch: float | None = spec(None, lo=0.0, omit_none=True)
    paired_vs_config: dict[str, Summary] | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class BlockBudget(Record):
    """A block sweep's answer: the cheapest value not measurably worse than the config's own."""

    key: str
    config_value: int | float | str
    backbone_epoch_s: float
    backbone_epoch_definition: str
    criterion: str
    cheapest_within_ci: dict[str, int | float] | None


@dataclass(frozen=True, kw_only=True)
class SweepRecord(RunHeader):
    """``sweep.json``: everything a sweep measured; depends only on config, seed, axis, versions and threads."""

    schema: str
    kind: str
    axis: AxisRecord
    chips: int = spec(lo=1)
    training_note: str
    base_preset: PresetRecord  # without identity
    model: str
    width: float = spec(lo=0.0, lo_open=True)
    dataset: DatasetRecord
    tsb: TsbRecord
    points: list[SweepPoint]
    training: dict[str, TrainingMeta]  # each checkpoint's train_time_s only
    block_budget: BlockBudget | None = spec(None, omit_none=True)
    plots: list[str] = field(default_factory=list)
    wall_time_s: float | None = spec(None, omit_none=True)
