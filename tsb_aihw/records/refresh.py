"""The TSB-refresh study's results (``results.json``) and its per-chip cells."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records.base import DatasetRecord, PresetRecord, Record, RunHeader, accuracy_field
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class RefreshEvent(Record):
    """One block write at a refresh time: what it cost."""

    time_s: float = spec(lo=0.0)
    train_s: float = spec(lo=0.0)
    block_pulses: int = spec(lo=0)
    block_reads: int = spec(lo=0)
    block_cells: int = spec(lo=0)
    block_failed_cells: int = spec(lo=0)
    backbone_reads_devices: int = spec(lo=0)


@dataclass(frozen=True, kw_only=True)
class RefreshCell(Record):
    """One chip of the refresh study: every arm's accuracy per time, on the same programmed chip."""

    chip_cost: dict[str, int | float]
    block_write0: dict[str, int]
    block_train0_s: float = spec(lo=0.0)
    chip: str
    tsb: list[float] = accuracy_field()
    tsb_refresh: list[float] = accuracy_field()
    refresh_events: list[RefreshEvent]
    tsb_rewrite: list[float] | None = accuracy_field(default=None, omit_none=True)
    rewrite_events: list[RefreshEvent] | None = spec(None, omit_none=True)
    reference: list[float] | None = accuracy_field(default=None, omit_none=True)
    seconds: float | None = spec(None, lo=0.0, omit_none=True)

    def arm(self, name: str) -> list[float] | None:
        value = getattr(self, name)
        assert value is None or isinstance(value, list)
        return value


@dataclass(frozen=True, kw_only=True)
class RefreshArm(Record):
    """One arm over the chips, and its paired difference to ``tsb``."""

    label: str
    per_chip: list[list[float]] = accuracy_field()
    accuracy: dict[str, Summary]
    minus_tsb: dict[str, Summary] | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class RefreshWrite(Record):
    """One refresh time's block write, each figure the mean over chips."""

    time: str
    block_pulses: float = spec(lo=0.0)
    block_reads: float = spec(lo=0.0)
    train_s: float = spec(lo=0.0)
    backbone_device_reads: float = spec(lo=0.0)


@dataclass(frozen=True, kw_only=True)
class RefreshCost(Record):
    """What refreshing costs against programming the chip once (means over chips)."""

    chip_pulses: float = spec(lo=0.0)
    block_write0_pulses: float = spec(lo=0.0)
    block_weights: int = spec(lo=0)
    block_train0_s: float = spec(lo=0.0)
    per_refresh: list[RefreshWrite]
    refresh_total_pulses: float = spec(lo=0.0)
    refresh_pulses_vs_chip: float = spec(lo=0.0)


@dataclass(frozen=True, kw_only=True)
class RefreshResult(RunHeader):
    """``results.json`` of ``tsb-aihw refresh``."""

    preset: PresetRecord
    model: str
    dataset: DatasetRecord
    chips: int = spec(lo=1)
    refresh_times: list[float] = spec(lo=0.0)
    refresh_labels: list[str]
    block: dict[str, int | float]
    drift_semantics: str
    arms: dict[str, RefreshArm]
    cost: RefreshCost
    chip_digests: list[str]
    chip_seconds: list[float | None]
    plots: list[str] = field(default_factory=list)
    wall_time_s: float | None = spec(None, omit_none=True)
