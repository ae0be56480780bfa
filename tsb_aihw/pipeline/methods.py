"""The methods a study compares: what backbone each deploys, what it write-verifies, what it does per chip.

This module owns every method name: :data:`BASE_METHODS` (one spec each), the grid method ``selective_verify``
(one spec per selection rule and fraction) and the lists configs offer (:data:`METHODS`, :data:`VARIANTS`)
are all derived here; configs, sweeps and the frontier import them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from tsb_aihw.baselines.selective_verify import LABELS as SELECTION_LABELS
from tsb_aihw.errors import ConfigError

if TYPE_CHECKING:
    from tsb_aihw.pipeline.config import BlockConfig

Backbone = Literal["early", "full", "vanilla"]
Block = Literal["clean", "generic", "chip"]
Verify = Literal["none", "all", "tsb", "masks"]


@dataclass(frozen=True)
class MethodSpec:
    """One deployment method.

    Attributes:
        key: stable id used in results files (``selective_verify/magnitude@0.0031``).
        label: legend label.
        backbone: ``"early"`` (TSB's early-convergence backbone), ``"full"`` (baseline (b)) or ``"vanilla"`` ((b)'s
            training without noise, σ = 0).
        block: ``None`` (no block), ``"clean"`` / ``"generic"`` (one block for all chips) or ``"chip"`` (a block
            trained per chip against that chip's read-back weights).
        verify: ``"none"``, ``"all"``, ``"tsb"`` or ``"masks"`` (selective write-verify).
        selection: (method, fraction) for selective write-verify.
        bn_recalibration: re-estimate BN statistics per chip through the analog forward.
        curve: name of the accuracy-vs-verified-fraction curve this point belongs to.
    """

    key: str
    label: str
    backbone: Backbone
    block: Block | None = None
    verify: Verify = "none"
    selection: tuple[str, float] | None = None
    bn_recalibration: bool = False
    curve: str | None = None


BASE_METHODS: dict[str, MethodSpec] = {
    "backbone_early": MethodSpec("backbone_early", "(a) early backbone, one-shot", "early"),
    "full_noise_injection": MethodSpec("full_noise_injection", "(b) noise-injection trained, one-shot", "full"),
    "full_verify": MethodSpec("full_verify", "(c) full write-verify", "full", verify="all"),
    "bn_recalibration": MethodSpec("bn_recalibration", "(e) per-chip BN recalibration", "full",
                                   bn_recalibration=True),
    "tsb_clean": MethodSpec("tsb_clean", "(f) block trained on clean backbone", "early", block="clean", verify="tsb"),
    "tsb": MethodSpec("tsb", "TSB (chip-specific block)", "early", block="chip", verify="tsb"),
    "tsb_generic": MethodSpec("tsb_generic", "TSB ablation: generic block (fresh noise)", "early", block="generic",
                              verify="tsb"),
    # TSB variants (the frontier study): the same chip-specific block on (b)'s backbone, or after BN re-estimation
    "tsb_full": MethodSpec("tsb_full", "TSB variant: block on the fully trained backbone", "full", block="chip",
                           verify="tsb"),
    "tsb_bn": MethodSpec("tsb_bn", "TSB variant: BN re-estimated through the chip, then the block", "early",
                         block="chip", verify="tsb", bn_recalibration=True),
    # the strongest point without a speed-up: BN re-estimated on (b) through the chip, then the block
    "tsb_full_bn": MethodSpec("tsb_full_bn", "TSB variant: BN re-estimated through the chip, then the block on the "
                              "fully trained backbone", "full", block="chip", verify="tsb", bn_recalibration=True),
    # a network trained as (b) but without noise, programmed one-shot: what a user deploys without any hardware
    # awareness, and the baseline of the "vanilla" reading of the paper's > 20x (pipeline.definitions)
    "vanilla": MethodSpec("vanilla", "(v) trained without noise (σ = 0), one-shot", "vanilla"),
}

#: the method that stands for a grid of specs (one per selection rule and verified fraction): :func:`selective_specs`
GRID_METHOD = "selective_verify"
#: the TSB variants of the frontier (not in a default study)
VARIANTS = ("tsb_full", "tsb_bn", "tsb_full_bn")
#: the BN-first variants and the method each equals while ``block.recalibrate_bn`` is on (the default)
BN_TWINS = {"tsb_bn": "tsb", "tsb_full_bn": "tsb_full"}
#: baselines a study runs only where its config names them (each trains one more backbone)
OPTIONAL = ("vanilla",)
_STUDY = [k for k in BASE_METHODS if k not in (*VARIANTS, *OPTIONAL)]
_AFTER_C = _STUDY.index("full_verify") + 1  # (d) follows (c), as in the paper's list
#: a study's methods by default, in report order: the paper's (a)-(f), TSB and its ablation
METHODS = (*_STUDY[:_AFTER_C], GRID_METHOD, *_STUDY[_AFTER_C:])
#: every name a config's ``methods`` can hold
ALL_METHODS = METHODS + VARIANTS + OPTIONAL
#: the methods whose per-chip block follows ``block.recalibrate_bn`` (tsb_bn re-estimates BN first whatever it says)
BN_FOLLOWING = ("tsb", "tsb_full")


def method_spec(name: str, block: "BlockConfig") -> MethodSpec:
    """A base method as a config runs it: tsb and tsb_full re-estimate BN through the chip before their block
    while ``block.recalibrate_bn`` is on (the default since it measured better on CIFAR-10; docs/design.md)."""
    if name not in BASE_METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(BASE_METHODS)}"
                          + (f" ({GRID_METHOD} is a grid: selective_specs)" if name == GRID_METHOD else ""))
    spec = BASE_METHODS[name]
    if name in BN_FOLLOWING and block.recalibrate_bn:
        return dataclasses.replace(spec, bn_recalibration=True, label=f"{spec.label}, BN re-estimated first")
    return spec


def selective_specs(methods: list[str], fractions: list[float]) -> list[MethodSpec]:
    """(d): selective write-verify of the (b) backbone at each fraction, one curve per selection rule."""
    return [MethodSpec(f"{GRID_METHOD}/{m}@{f:.6g}", f"(d) selective verify, {SELECTION_LABELS[m]} "
                       f"{100 * f:.3g}%", "full", verify="masks", selection=(m, f),
                       curve=f"(d) selective verify, {SELECTION_LABELS[m]}")
            for m in methods for f in fractions]
