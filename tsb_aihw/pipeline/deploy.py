"""Per-chip deployment: one method on one chip, from the trained models to the accuracies at every time.

``deploy_cell(spec, chip, models, preset)`` builds a fresh analog model of the method's digital model,
programs it as chip ``chip`` (:class:`tsb_aihw.analog.chip.Chip`), adapts it if the method does (the
chip-specific block, BN recalibration) and evaluates it at every drift time. It depends on nothing but its
arguments, so it gives the same numbers in-process, in a process pool or on a Dask worker.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tsb_aihw.analog import to_analog, weight_report
from tsb_aihw.analog.chip import Chip
from tsb_aihw.baselines import recalibrate_bn
from tsb_aihw.devices import DevicePreset, programming_cost
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.accuracy import chip_accuracy
from tsb_aihw.evaluation.times import parse_times
from tsb_aihw.pipeline.config import PER_CHIP_BLOCK_KEYS, BlockConfig
from tsb_aihw.pipeline.methods import MethodSpec
from tsb_aihw.pipeline.trained import TrainedModels, train_block_for_chip
from tsb_aihw.utils.io import JsonObject, check_accuracies
from tsb_aihw.utils.schema import check


@dataclass(frozen=True)
class DeploySpec:
    """What a cell's chips are programmed on and adapted with: a preset name or path plus dotted overrides, and
    overrides of the per-chip block (``block`` fields of :data:`PER_CHIP_BLOCK_KEYS`: its budget and k; empty:
    the config's)."""

    preset: str
    overrides: JsonObject = field(default_factory=dict, hash=False)  # dotted preset keys, as a config gives them
    block: JsonObject = field(default_factory=dict, hash=False)  # BlockConfig fields, checked by block_config

    def load(self) -> DevicePreset:
        from tsb_aihw.devices import load_preset

        return load_preset(self.preset, overrides=self.overrides)

    def block_config(self, base: BlockConfig) -> BlockConfig:
        """``base`` with this spec's block overrides, checked by the config schema."""
        if not self.block:
            return base
        bad = [k for k in self.block if k not in PER_CHIP_BLOCK_KEYS]
        if bad:
            raise ConfigError(f"block overrides {bad} are not the per-chip block's budget or k; choose from "
                              f"{', '.join(PER_CHIP_BLOCK_KEYS)}")
        out = dataclasses.replace(base, **self.block)
        check(out, prefix="block.")
        return out.validate()


@dataclass
class CellResult:
    """One (method, chip) cell: accuracy at each time, programming cost, per-chip block time, and the chip."""

    acc: list[float]
    cost: dict[str, float]
    block_time_s: float
    verified_fraction: float
    chip: str  # digest of the programmed backbone (equal digests = the same chip)
    wall_s: float = 0.0  # the whole cell: conversion, programming, adaptation, evaluation (0: not recorded)

    def to_dict(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "CellResult":
        """A stored cell, type-checked (a hand-edited or damaged store is an error, not used)."""
        names = ("acc", "cost", "block_time_s", "verified_fraction", "chip")
        if not isinstance(d, dict) or any(k not in d for k in names):
            missing = [k for k in names if not isinstance(d, dict) or k not in d]
            raise ConfigError(f"{where}: a stored cell lacks {missing}"
                              "; the store was edited or damaged (move it aside with --move-aside to recompute)")
        if not isinstance(d["cost"], dict):
            raise ConfigError(f"{where}: a stored cell's cost is not a mapping; the store was edited or damaged")
        return cls(acc=check_accuracies(d["acc"], where), cost=dict(d["cost"]), block_time_s=float(d["block_time_s"]),
                   verified_fraction=float(d["verified_fraction"]), chip=str(d["chip"]),
                   wall_s=float(d.get("wall_s", 0.0)))


def recalibrate_chip_bn(c: Chip, models: TrainedModels, fast: bool | str | None = None) -> None:
    """A cell's BN re-estimation of chip ``c``: seeded by the chip, on the training loader reset for it, with
    the config's batches; forward ``fast`` (None: the config's ``fast_eval``) with the config's matrix product."""
    cfg = models.cfg
    with c.rng("bn-recalibration"):
        recalibrate_bn(c.model, models.train_loader("bn", c.index), batches=cfg.bn_recalibration_batches,
                       device=cfg.device, fast=cfg.fast_eval if fast is None else fast, product=cfg.fast_eval_product)


def deploy_cell(spec: MethodSpec, chip: int, models: TrainedModels, preset: DevicePreset,
                block: BlockConfig | None = None) -> CellResult:
    """Program ``spec``'s model as chip ``chip`` on ``preset``, adapt it if the method does (a per-chip block
    with ``block``'s budget; None: the config's), evaluate at every time. Every random step is seeded by the
    chip (:class:`Chip`): the result depends on nothing else."""
    start = time.perf_counter()
    cfg = models.cfg
    verify: Any = models.selection(*spec.selection) if spec.verify == "masks" and spec.selection else spec.verify
    b = block if block is not None else cfg.block
    analog = to_analog(models.digital_model(spec, b), preset, verify=verify).eval()
    c = Chip(analog, preset, cfg.seed, chip)
    digest = c.program()
    block_time = 0.0
    if spec.bn_recalibration:  # before the block: a TSB variant trains its block on the re-estimated BN
        recalibrate_chip_bn(c, models)
    if spec.block == "chip":
        w, block_time = train_block_for_chip(models, c, b.read_time, backbone=spec.backbone,
                                             with_bn=spec.bn_recalibration, block=b)
        c.write_block(w)
    c.calibrate_adc(models.train_loader("adc", chip))  # a no-op unless the preset calibrates its ADC ranges
    cost = {k: v for k, v in programming_cost(analog, preset).to_dict().items() if isinstance(v, (int, float))}
    fraction = weight_report(analog).verified_fraction
    accs = [chip_accuracy(c, models.data.test, t, device=cfg.device, fast=cfg.fast_eval, product=cfg.fast_eval_product)
            for t in parse_times(cfg.times)]
    return CellResult(acc=accs, cost=cost, block_time_s=block_time, verified_fraction=fraction, chip=digest,
                      wall_s=time.perf_counter() - start)
