"""Write-verify as a process: program, read back, re-program the cells outside tolerance, count everything.

:class:`WriteVerifyNoiseModel` wraps any AIHWKit noise model. At ``apply_programming_noise`` (called by the
tile's ``program_weights``) it

1. programs every device once with the inner model's programming noise (one pulse each),
2. reads the devices of verified cells with Gaussian verify-read noise,
3. re-programs the devices whose read is outside ``tolerance * range`` of the target, and repeats 2-3 until
   all pass or a device has had ``max_iterations`` pulses (it is then counted as failed and keeps its last
   state). ``write_verify.algorithm`` says how a retry pulse acts: ``redraw`` = a fresh draw of the inner
   model's one-shot programming noise (the state is forgotten); ``incremental`` = a corrective step from the
   current state toward the target, of mean ``step_gain * (target - read)`` and sd ``step_noise * |mean|
   + step_noise_floor * range`` (steps shrink with the error, as in real program-verify loops;
   docs/devices.md section 3 gives the model and its sources).

The tolerance applies to the noisy verify READ: a device is accepted when its read is within tolerance, so
some accepted devices are truly outside it (by up to a few read-noise sd; numbers in docs/devices.md).

Conductance models (PCM, ReRAM) run the loop per device on conductances (range = ``g_max - g_min``);
weight-level models (NVCIM Gaussian) run it on weights (range = the tile's abs-max weight). Drift
coefficients come from the targets as in AIHWKit, and drift and read noise after programming are delegated
to the inner model unchanged: verify fixes the programming error only. Each tile deep-copies its rpu_config,
so each tile owns one instance of this class: the mask and the statistics of the last programming live here.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor

from tsb_aihw.devices.noise.weight_level import WeightLevelNoiseModel
from tsb_aihw.devices.schema import WriteVerifySpec
from tsb_aihw.errors import ConfigError, TSBError


@torch.no_grad()
def verify_loop(target: Tensor, programmed: Tensor, redraw: Callable[[Tensor], Tensor], mask: Tensor, tol: float,
                read_std: float, max_iterations: int, asymmetric: bool = False
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Program-and-verify the devices selected by ``mask``; all devices have had one pulse already.

    Args:
        target: target values (conductance or weight), any shape.
        programmed: values after the first pulse (same shape).
        redraw: ``redraw(sel)`` returns fresh programming draws for ``target[sel]`` (1-D, in that order).
        mask: bool, same shape: devices to verify.
        tol: absolute acceptance half-width.
        read_std: absolute std of the verify read.
        max_iterations: max pulses per device (the first included); with ``asymmetric``, max verify rounds.
        asymmetric: PCM-like (``write_verify.asymmetry: pcm-asymmetric``): a device read above tolerance
            cannot be stepped down; it costs a RESET pulse before its redraw (two pulses that round).

    Returns:
        (programmed, pulses, reads, failed): per-device values, pulse and read counts (int32) and a bool
        tensor of verified devices still out of tolerance (as read) after ``max_iterations`` pulses.
    """
    dev = target.device
    pulses = torch.ones(target.shape, dtype=torch.int32, device=dev)
    reads = torch.zeros(target.shape, dtype=torch.int32, device=dev)
    failed = torch.zeros(target.shape, dtype=torch.bool, device=dev)
    active = mask.clone()
    n = 1
    while bool(active.any()):
        read = programmed + read_std * torch.randn_like(programmed) if read_std > 0 else programmed
        reads += active.to(torch.int32)
        bad = active & ((read - target).abs() > tol)
        if n >= max_iterations:
            failed = bad
            break
        if not bool(bad.any()):
            break
        programmed = programmed.clone()
        programmed[bad] = redraw(bad)
        pulses += bad.to(torch.int32)
        if asymmetric:
            pulses += (bad & (read - target > tol)).to(torch.int32)  # the RESET before the fresh draw
        active = bad
        n += 1
    return programmed, pulses, reads, failed


@torch.no_grad()
def incremental_verify_loop(target: Tensor, programmed: Tensor, mask: Tensor, tol: float, read_std: float,
                            max_iterations: int, gain: float, step_noise: float, step_floor: float,
                            lo: float | None = None, hi: float | None = None,
                            redraw: Callable[[Tensor], Tensor] | None = None, asymmetric: bool = False
                            ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Program-and-verify with corrective pulses; same arguments and returns as :func:`verify_loop`.

    Each retry moves a device from its current value ``g`` by ``gain * e * (1 + step_noise * xi1) +
    step_floor * xi2`` with ``e = target - read`` (the verify read that failed), then clips to [lo, hi].
    ``step_floor`` is absolute (same units as ``target``).

    ``asymmetric`` (PCM: partial SET pulses raise the conductance step by step, only a RESET lowers it, and
    abruptly): a device read below tolerance gets the step above with its size floored at 0 (a SET cannot
    lower g); a device read ABOVE tolerance is RESET to ``lo`` and starts a fresh programming sequence:
    ``redraw(sel)`` (the device model's one-shot draw, the sequence's first pulse), two pulses that round.
    A target within ``tol`` of ``lo`` is reached by the RESET itself (one pulse, drawn by ``redraw``: the
    one-shot draw of such a target is the RESET state). ``max_iterations`` then bounds verify rounds.
    """
    if asymmetric and (redraw is None or lo is None):
        raise ValueError("incremental_verify_loop: asymmetric verify needs redraw (the fresh sequence's first "
                         "pulse) and lo (the RESET state)")
    dev = target.device
    pulses = torch.ones(target.shape, dtype=torch.int32, device=dev)
    reads = torch.zeros(target.shape, dtype=torch.int32, device=dev)
    failed = torch.zeros(target.shape, dtype=torch.bool, device=dev)
    active = mask.clone()
    programmed = programmed.clone()
    n = 1
    while bool(active.any()):
        read = programmed + read_std * torch.randn_like(programmed) if read_std > 0 else programmed
        reads += active.to(torch.int32)
        err = target - read
        bad = active & (err.abs() > tol)
        if n >= max_iterations:
            failed = bad
            break
        if not bool(bad.any()):
            break
        over = bad & (err < 0) if asymmetric else None
        step_sel = bad & ~over if over is not None else bad
        e = err[step_sel]
        step = gain * e * (1.0 + step_noise * torch.randn_like(e))
        if step_floor > 0:
            step = step + step_floor * torch.randn_like(e)
        if asymmetric:
            step = step.clamp(min=0.0)  # a partial SET only raises the conductance
        new = programmed[step_sel] + step
        if lo is not None or hi is not None:
            new = new.clamp(min=lo, max=hi)
        programmed[step_sel] = new
        pulses += bad.to(torch.int32)
        if over is not None and bool(over.any()):
            assert redraw is not None and lo is not None
            programmed[over] = redraw(over)  # RESET, then the fresh sequence's first pulse (one draw)
            fresh = over & (target - lo > tol)  # targets at the RESET state need no programming pulse
            pulses += fresh.to(torch.int32)
        active = bad
        n += 1
    return programmed, pulses, reads, failed


class WriteVerifyNoiseModel(BaseNoiseModel):
    """An AIHWKit noise model that programs through a write-verify loop around ``inner``.

    Args:
        inner: the device model (any AIHWKit ``BaseNoiseModel``, or a :class:`WeightLevelNoiseModel`).
        spec: tolerance, max iterations, verify-read noise, devices per weight (and costs, used elsewhere).
        default_verified: which cells to verify when no mask is set: all (True) or none (False).
        min_drift_time: drift times in (0, min_drift_time) are rejected (outside the model's fitted range).
    """

    def __init__(self, inner: BaseNoiseModel, spec: WriteVerifySpec, default_verified: bool,
                 min_drift_time: float = 0.0) -> None:
        super().__init__(getattr(inner, "g_converter", None))
        self.inner = inner
        self.spec = spec
        self.default_verified = bool(default_verified)
        self.min_drift_time = float(min_drift_time)
        self.verify_mask: Optional[Tensor] = None
        self.last_stats: Optional[Dict[str, int]] = None
        self._cell_pulses: Optional[Tensor] = None  # per-cell pulses of the last programming (not pickled)

    # -- identity ---------------------------------------------------------------------------------------
    def _key(self) -> tuple:
        mask = None if self.verify_mask is None else (tuple(self.verify_mask.shape),
                                                     self.verify_mask.flatten().tolist())
        return (self.inner, self.spec, self.default_verified, self.min_drift_time, mask)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable (mask)

    def __str__(self) -> str:
        mask = ("default" if self.verify_mask is None
                else f"{int(self.verify_mask.sum())}/{self.verify_mask.numel()}")
        return (f"WriteVerifyNoiseModel(inner={self.inner}, default_verified={self.default_verified}, "
                f"mask={mask}, tolerance={self.spec.tolerance}, max_iterations={self.spec.max_iterations})")

    __repr__ = __str__

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_cell_pulses"] = None
        return state

    # -- mask -------------------------------------------------------------------------------------------
    def resolve_mask(self, shape: torch.Size) -> Tensor:
        """The cells to verify for weights of ``shape``: the set mask, else all or none."""
        if self.verify_mask is None:
            return torch.full(tuple(shape), self.default_verified, dtype=torch.bool)
        if tuple(self.verify_mask.shape) != tuple(shape):
            raise TSBError(f"verify mask has shape {tuple(self.verify_mask.shape)} but this tile's weight matrix "
                           f"is {tuple(shape)}; set a mask of the tile's shape [out, in] (set_verify_mask)")
        return self.verify_mask

    # -- AIHWKit hooks ----------------------------------------------------------------------------------
    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> Tuple[Tensor, List[Optional[Tensor]]]:
        mask = self.resolve_mask(weights.shape).to(weights.device)
        if isinstance(self.inner, WeightLevelNoiseModel):
            out, params, pulses, reads, failed, devices = self._program_weight_level(weights, mask)
        else:
            out, params, pulses, reads, failed, devices = self._program_conductances(weights, mask)
        self._cell_pulses = pulses.to(device="cpu", dtype=torch.int16)
        self.last_stats = {
            "cells": int(weights.numel()),
            "devices": int(weights.numel() * devices),
            "verified_cells": int(mask.sum()),
            "pulses": int(pulses.sum()),
            "reads": int(reads.sum()),
            "failed_cells": int(failed.sum()),
        }
        return out, params

    def _loop(self, target: Tensor, first: Tensor, redraw: Callable[[Tensor], Tensor], mask: Tensor,
              unit: float, lo: Optional[float], hi: Optional[float]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The spec's verify algorithm on one slice; ``unit`` is the range the spec's fractions refer to."""
        sp = self.spec
        tol, read_std = sp.tolerance * unit, sp.verify_read_noise * unit
        # asymmetry needs a RESET state: conductance slices only (weight-level models have no lo)
        asym = getattr(sp, "asymmetry", "symmetric") == "pcm-asymmetric" and lo is not None
        if getattr(sp, "algorithm", "redraw") == "incremental":
            return incremental_verify_loop(target, first, mask, tol, read_std, sp.max_iterations, sp.step_gain,
                                           sp.step_noise, sp.step_noise_floor * unit, lo, hi,
                                           redraw=redraw, asymmetric=asym)
        return verify_loop(target, first, redraw, mask, tol, read_std, sp.max_iterations, asymmetric=asym)

    def _program_weight_level(self, weights: Tensor, mask: Tensor) -> tuple:
        """Loop on weights; each (re-)program or read of a weight touches all its devices."""
        inner: WeightLevelNoiseModel = self.inner  # the caller checked isinstance
        dpw = inner.devices_per_weight or self.spec.devices_per_weight
        prog, params = inner.apply_programming_noise(weights)
        if bool(mask.any()):
            scale = float(weights.abs().max()) if weights.numel() else 0.0
            std = inner.programming_std(weights)  # set by the whole target (abs-max), same for every cell

            def redraw(sel: Tensor) -> Tensor:
                w = weights[sel]
                return w + std * torch.randn_like(w) if std > 0 else w.clone()

            prog, pulses, reads, failed = self._loop(weights, prog, redraw, mask, scale, None, None)
        else:
            pulses = torch.ones(weights.shape, dtype=torch.int32, device=weights.device)
            reads = torch.zeros_like(pulses)
            failed = torch.zeros(weights.shape, dtype=torch.bool, device=weights.device)
        return prog, params, pulses * dpw, reads * dpw, failed, dpw

    def _program_conductances(self, weights: Tensor, mask: Tensor) -> tuple:
        """Loop per device on conductances; first pass draws exactly as AIHWKit's own programming does."""
        inner = self.inner
        conv = inner.g_converter
        targets, conv_params = conv.convert_to_conductances(weights)
        progs, nus = [], []
        for g_target in targets:  # same order of draws as BaseNoiseModel.apply_programming_noise
            progs.append(inner.apply_programming_noise_to_conductance(g_target))
            nus.append(inner.generate_drift_coefficients(g_target))
        if isinstance(targets, Tensor):  # single-device converters return one tensor (iterated by rows)
            t_slices, p_slices = [targets], [torch.stack(progs)]
        else:
            t_slices, p_slices = list(targets), progs
        g_range = float(conv.g_max - conv.g_min)
        pulses = torch.zeros(weights.shape, dtype=torch.int32, device=weights.device)
        reads = torch.zeros_like(pulses)
        failed = torch.zeros(weights.shape, dtype=torch.bool, device=weights.device)
        verify = bool(mask.any())
        for i, (g_t, g_p) in enumerate(zip(t_slices, p_slices)):
            if verify:
                # the device models are element-wise in g_target: redraw only the devices that failed
                redraw = lambda sel, g_t=g_t: inner.apply_programming_noise_to_conductance(g_t[sel])  # noqa: E731
                g_p, p, r, f = self._loop(g_t, g_p, redraw, mask, g_range, float(conv.g_min), float(conv.g_max))
                p_slices[i] = g_p
                pulses += p
                reads += r
                failed |= f
            else:
                pulses += 1
        back = p_slices[0] if isinstance(targets, Tensor) else p_slices
        return conv.convert_back_to_weights(back, conv_params), nus, pulses, reads, failed, len(t_slices)

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: List[Optional[Tensor]],
                          t_inference: float) -> Tensor:
        if t_inference < 0 or 0 < t_inference < self.min_drift_time:
            raise ConfigError(f"drift time t = {t_inference!r} s is outside the fitted range of "
                              f"{type(self.inner).__name__} (t = 0 or t >= {self.min_drift_time:g} s); "
                              f"use t = 0 or a time >= {self.min_drift_time:g} s")
        return self.inner.apply_drift_noise(weights, drift_noise_parameters, t_inference)

    # conductance-level hooks delegate, so code that calls them on the tile's model sees the device physics
    def generate_drift_coefficients(self, g_target: Tensor) -> Optional[Tensor]:
        return self.inner.generate_drift_coefficients(g_target)

    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        return self.inner.apply_programming_noise_to_conductance(g_target)

    def apply_drift_noise_to_conductance(self, g_prog: Tensor, drift_noise_param: Optional[Tensor],
                                         t_inference: float) -> Tensor:
        return self.inner.apply_drift_noise_to_conductance(g_prog, drift_noise_param, t_inference)

    @property
    def cell_pulses(self) -> Optional[Tensor]:
        """Pulses per cell (summed over its devices) of the last programming in this process, or None."""
        return self._cell_pulses
