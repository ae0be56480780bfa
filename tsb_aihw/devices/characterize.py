"""Measure what a preset does to a reference weight matrix: error over time, one-shot vs verified, cost.

``python -m tsb_aihw.devices.characterize [--chips 5] [--json]`` reproduces the tables in docs/devices.md.
The layer is one ``AnalogLinear`` (single tile) with Gaussian weights; the effective weight is what the
forward pass uses: the programmed/drifted tile weights times the drift-compensation scale ``alpha``.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch

from tsb_aihw.devices.presets import DevicePreset, list_presets, load_preset
from tsb_aihw.devices.programming import programming_cost, tile_programming_stats
from tsb_aihw.utils.io import JsonObject

#: "programmed" = right after programming (no drift call); the others call ``drift_analog_weights(t)``. For PCM
#: AIHWKit's t counts from t_0 = 20 s after programming, so t=0 already carries 20 s of 1/f read noise.
TIMES = {"programmed": None, "t=0": 0.0, "1h": 3600.0, "1d": 86400.0, "1y": 365.25 * 86400.0}


def effective_weights(layer: Any) -> torch.Tensor:
    """Weights the eval forward applies: tile weights with mapping scales, times the drift alpha."""
    weights = layer.get_weights()[0]
    tiles = list(layer.analog_tiles())
    if len(tiles) != 1:
        raise ValueError("effective_weights expects a single-tile layer")
    alpha = tiles[0].alpha if tiles[0].rpu_config.drift_compensation is not None else 1.0
    return weights * alpha


@dataclass(frozen=True)
class ErrorStats:
    """One way of programming (one-shot or verified), averaged over chips: the weight error at each time (relative
    norm, its sd over chips, sd over max|W|) and the programming cost per cell."""

    rel_error: dict[str, float]
    rel_error_sd: dict[str, float]
    sd_over_absmax: dict[str, float]
    pulses_per_cell: float
    reads_per_cell: float
    failed_fraction: float
    time_per_cell_s: float
    energy_per_cell_j: float
    devices_per_weight: int


@dataclass(frozen=True)
class Characterization:
    """What a preset does to a reference weight matrix, one-shot and verified (a row pair of docs/devices.md)."""

    preset: str
    shape: list[int]
    chips: int
    one_shot: ErrorStats
    verified: ErrorStats

    def to_dict(self) -> JsonObject:
        return asdict(self)


@torch.no_grad()
def characterize(preset: DevicePreset, n_chips: int = 5, shape: tuple[int, int] = (64, 256), seed: int = 0,
                 times: dict[str, float | None] | None = None) -> Characterization:
    """Relative error ||W_eff - W|| / ||W|| and sd(W_eff - W)/max|W| per time, one-shot and verified."""
    from aihwkit.nn import AnalogLinear

    times = times or TIMES
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(shape, generator=gen)
    stats_of: dict[bool, ErrorStats] = {}
    for verified in (False, True):
        rel: dict[str, list[float]] = {k: [] for k in times}
        sd: dict[str, list[float]] = {k: [] for k in times}
        pulses, reads, failed, cells, time_s, energy_j = 0, 0, 0, 0, 0.0, 0.0
        for chip in range(n_chips):
            torch.manual_seed(seed * 1000 + chip)
            layer = AnalogLinear(shape[1], shape[0], bias=False, rpu_config=preset.rpu_config(verified))
            layer.set_weights(weights)
            layer.eval()
            layer.program_analog_weights()
            stats = tile_programming_stats(next(layer.analog_tiles()))
            cost = programming_cost(layer, preset)
            pulses, reads, failed = pulses + cost.pulses, reads + cost.reads, failed + cost.failed_cells
            time_s, energy_j = time_s + cost.time_s, energy_j + cost.energy_j
            cells += stats["cells"]
            for key, t in times.items():
                if t is not None:
                    layer.drift_analog_weights(t)
                diff = effective_weights(layer) - weights
                rel[key].append(float(diff.norm() / weights.norm()))
                sd[key].append(float(diff.std() / weights.abs().max()))
        stats_of[verified] = ErrorStats(
            rel_error={k: sum(v) / len(v) for k, v in rel.items()},
            rel_error_sd={k: _sd(v) for k, v in rel.items()},
            sd_over_absmax={k: sum(v) / len(v) for k, v in sd.items()},
            pulses_per_cell=pulses / cells, reads_per_cell=reads / cells, failed_fraction=failed / cells,
            time_per_cell_s=time_s / cells, energy_per_cell_j=energy_j / cells,
            devices_per_weight=preset.write_verify.devices_per_weight,
        )
    return Characterization(preset=preset.name, shape=list(shape), chips=n_chips, one_shot=stats_of[False],
                            verified=stats_of[True])


@dataclass(frozen=True)
class VerifyBin:
    """The write-verify outcome of the devices whose target lies in one conductance bin (fractions of the range)."""

    g_over_range: list[float]
    devices: int
    pulses_mean: float
    pulses_sd: float
    err_rms_over_range: float
    failed_fraction: float


@dataclass(frozen=True)
class VerifyStatistics:
    """Per-device outcome of a preset's write-verify loop (docs/devices.md section 3); the error is the true
    one after verify, relative to the conductance range, and the tolerance applies to the noisy verify read."""

    preset: str
    algorithm: str
    devices: int
    pulses_mean: float
    pulses_sd: float
    pulses_max: int
    failed_fraction: float
    err_rms_over_range: float
    within_tol: float
    within_tol_plus_2_read_sd: float
    tolerance: float
    verify_read_noise: float
    bins: list[VerifyBin]

    def to_dict(self) -> JsonObject:
        return asdict(self)


@torch.no_grad()
def verify_statistics(preset: DevicePreset, n_chips: int = 3, shape: tuple[int, int] = (64, 256), seed: int = 0,
                      bins: int = 5) -> VerifyStatistics:
    """Per-device outcome of the preset's write-verify loop on a Gaussian weight matrix, all cells verified.

    Runs the loop exactly as programming does (first pulse = the device model's one-shot draw) and reports
    pulses per device (mean, sd), failures, the true error after verify (the tolerance applies to the noisy
    verify read, so some accepted devices are truly outside it) and the same binned by target conductance.
    Conductance models only (pcm, rram).
    """
    wv = preset.rpu_config(verified=True).noise_model
    inner, conv = wv.inner, wv.inner.g_converter
    g_min, g_max = float(conv.g_min), float(conv.g_max)
    unit = g_max - g_min
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(shape, generator=gen)
    tgt: list[torch.Tensor] = []
    fin: list[torch.Tensor] = []
    pul: list[torch.Tensor] = []
    fail: list[torch.Tensor] = []
    for chip in range(n_chips):
        torch.manual_seed(seed * 1000 + chip)
        targets, _ = conv.convert_to_conductances(weights)
        for g_t in ([targets] if isinstance(targets, torch.Tensor) else list(targets)):
            first = inner.apply_programming_noise_to_conductance(g_t)
            redraw = lambda sel, g_t=g_t: inner.apply_programming_noise_to_conductance(g_t[sel])  # noqa: E731
            mask = torch.ones(g_t.shape, dtype=torch.bool)
            g_p, p, _, f = wv._loop(g_t, first, redraw, mask, unit, g_min, g_max)
            for store, value in ((tgt, g_t), (fin, g_p), (pul, p), (fail, f)):
                store.append(value.flatten())
    g_t, g_p, p, f = torch.cat(tgt), torch.cat(fin), torch.cat(pul).float(), torch.cat(fail)
    err = (g_p - g_t).abs() / unit
    tol, rsd = preset.write_verify.tolerance, preset.write_verify.verify_read_noise
    edges = torch.linspace(0.0, 1.0, bins + 1)
    x = ((g_t - g_min) / unit).clamp(0.0, 1.0)
    rows: list[VerifyBin] = []
    for i in range(bins):
        sel = (x >= edges[i]) & ((x < edges[i + 1]) if i < bins - 1 else (x <= 1.0))
        if not bool(sel.any()):
            continue
        rows.append(VerifyBin(g_over_range=[float(edges[i]), float(edges[i + 1])], devices=int(sel.sum()),
                              pulses_mean=float(p[sel].mean()), pulses_sd=float(p[sel].std()),
                              err_rms_over_range=float(err[sel].pow(2).mean().sqrt()),
                              failed_fraction=float(f[sel].float().mean())))
    return VerifyStatistics(preset=preset.name, algorithm=preset.write_verify.algorithm, devices=int(g_t.numel()),
                            pulses_mean=float(p.mean()), pulses_sd=float(p.std()), pulses_max=int(p.max()),
                            failed_fraction=float(f.float().mean()),
                            err_rms_over_range=float(err.pow(2).mean().sqrt()),
                            within_tol=float((err <= tol).float().mean()),
                            within_tol_plus_2_read_sd=float((err <= tol + 2 * rsd).float().mean()),
                            tolerance=tol, verify_read_noise=rsd, bins=rows)


def _sd(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def markdown(results: list[Characterization]) -> str:
    keys = list(results[0].one_shot.rel_error)
    lines = ["| preset | programming | " + " | ".join(keys) + " | sd/max\\|W\\| programmed | pulses/cell | "
             "reads/cell | failed | time/cell | energy/cell |", "|---|---|" + "---|" * (len(keys) + 6)]
    for r in results:
        for tag, d in (("one-shot", r.one_shot), ("verified", r.verified)):
            errs = " | ".join(f"{d.rel_error[k]:.3f}" for k in keys)
            lines.append(f"| {r.preset} | {tag} | {errs} | {d.sd_over_absmax[keys[0]]:.4f} | "
                         f"{d.pulses_per_cell:.2f} | {d.reads_per_cell:.2f} | {d.failed_fraction:.2%} | "
                         f"{d.time_per_cell_s * 1e6:.3g} us | {d.energy_per_cell_j * 1e12:.3g} pJ |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chips", type=int, default=5)
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="dotted overrides applied to every preset, e.g. write_verify.verify_read_noise=0")
    args = parser.parse_args(argv)
    overrides = {k: _parse(v) for k, v in (s.split("=", 1) for s in args.set)}
    results = [characterize(load_preset(n, overrides=overrides), n_chips=args.chips)
               for n in (args.presets or list_presets())]
    print(json.dumps([r.to_dict() for r in results], indent=2) if args.json else markdown(results))
    return 0


def _parse(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


if __name__ == "__main__":
    raise SystemExit(main())
