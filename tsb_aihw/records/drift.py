"""A drift study's results (``drift.json``) and its (preset, chip) cells."""
from __future__ import annotations

from dataclasses import dataclass, field

from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records.base import Record, RunHeader, accuracy_field
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class DriftCell(Record):
    """One programmed chip of one preset: its accuracy at every time, its seed and fingerprint."""

    accuracies: list[float] = accuracy_field()
    seed: int
    digest: str


@dataclass(frozen=True, kw_only=True)
class DriftPresetResult(Record):
    """One preset over the study's chips."""

    identity: str
    folder: str
    accuracies: list[list[float]] = accuracy_field()  # [chip][time]
    chip_seeds: list[int]
    chip_digests: list[str]
    summary: dict[str, Summary]
    resumed_chips: int = spec(lo=0)


@dataclass(frozen=True, kw_only=True)
class ModelSource(Record):
    """Which digital model a drift study measured: a checkpoint (``source`` its path, nothing else), or the model
    trained here with noise injection (``source`` "trained", its checkpoint key's fields, training time and
    validation accuracy). Also the meta of that model's checkpoint, so a later run that loads it says ``reused``."""

    source: str
    model: str | None = spec(None, omit_none=True)
    width: float | None = spec(None, omit_none=True)
    dataset: str | None = spec(None, omit_none=True)
    epochs: int | None = spec(None, omit_none=True)
    noise_std: float | None = spec(None, omit_none=True)
    seed: int | None = spec(None, omit_none=True)
    data_content: str | None = spec(None, omit_none=True)  # a user's image folder: its sha256
    train_time_s: float | None = spec(None, lo=0.0, omit_none=True)
    best_val_acc: float | None = spec(None, omit_none=True)
    reused: bool | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class DriftResult(RunHeader):
    """``drift.json``: one model on several presets, accuracy against drift time."""

    chips: int = spec(lo=1)
    verify: str
    presets: dict[str, DriftPresetResult]
    model_source: ModelSource
    plots: list[str] = field(default_factory=list)
