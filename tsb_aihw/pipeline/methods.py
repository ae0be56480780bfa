"""The methods a study compares: what backbone each deploys, what it write-verifies, what it does per chip."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsb_aihw.pipeline.config import BlockConfig


@dataclass(frozen=True)
class MethodSpec:
    """One deployment method.

    Attributes:
        key: stable id used in results files (``selective_verify/magnitude@0.0031``).
        label: legend label.
        backbone: ``"early"`` (TSB's early-convergence backbone) or ``"full"`` (baseline (b)).
        block: ``None`` (no block), ``"clean"`` / ``"generic"`` (one block for all chips) or ``"chip"`` (a block
            trained per chip against that chip's read-back weights).
        verify: ``"none"``, ``"all"``, ``"tsb"`` or ``"masks"`` (selective write-verify).
        selection: (method, fraction) for selective write-verify.
        bn_recalibration: re-estimate BN statistics per chip through the analog forward.
        curve: name of the accuracy-vs-verified-fraction curve this point belongs to.
    """

    key: str
    label: str
    backbone: str
    block: str | None = None
    verify: str = "none"
    selection: tuple[str, float] | None = None
    bn_recalibration: bool = False
    curve: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


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
}

#: the methods whose per-chip block follows ``block.recalibrate_bn`` (tsb_bn re-estimates BN first whatever it says)
BN_FOLLOWING = ("tsb", "tsb_full")


def method_spec(name: str, block: "BlockConfig") -> MethodSpec:
    """A base method as a config runs it: tsb and tsb_full re-estimate BN through the chip before their block
    while ``block.recalibrate_bn`` is on (the default since it measured better on CIFAR-10; docs/design.md)."""
    spec = BASE_METHODS[name]
    if name in BN_FOLLOWING and block.recalibrate_bn:
        return dataclasses.replace(spec, bn_recalibration=True, label=f"{spec.label}, BN re-estimated first")
    return spec


SELECTION_LABELS = {"random": "random", "magnitude": "magnitude", "second_derivative": "2nd-derivative (SWIM)"}


def selective_specs(methods: list[str], fractions: list[float]) -> list[MethodSpec]:
    """(d): selective write-verify of the (b) backbone at each fraction, one curve per selection rule."""
    return [MethodSpec(f"selective_verify/{m}@{f:.6g}", f"(d) selective verify, {SELECTION_LABELS.get(m, m)} "
                       f"{100 * f:.3g}%", "full", verify="masks", selection=(m, f),
                       curve=f"(d) selective verify, {SELECTION_LABELS.get(m, m)}")
            for m in methods for f in fractions]
