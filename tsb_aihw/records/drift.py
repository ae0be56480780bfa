"""A drift study's results (``drift.json``) and its (preset, chip) cells."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
class DriftResult(RunHeader):
    """``drift.json``: one model on several presets, accuracy against drift time."""

    chips: int = spec(lo=1)
    verify: str
    presets: dict[str, DriftPresetResult]
    model_source: dict[str, Any]  # a checkpoint's path, or the training meta of the model trained here
    plots: list[str] = field(default_factory=list)
