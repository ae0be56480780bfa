"""Monte-Carlo over chips: program a fresh chip, optionally adapt to it, drift, evaluate; resumable.

Conventions
- Chip ``i`` is :class:`tsb_aihw.analog.chip.Chip` ``(model, preset, seed, i)``: programmed tile by tile,
  drifted and evaluated with every random step seeded by the chip, so chip ``i`` here is chip ``i`` of
  ``tsb-aihw run``, ``sweep``, ``drift`` and ``refresh`` for the same model, preset and seed, and every
  chip's result is independent of run order, of other chips and of resuming.
- Every chip starts from the same model state: digital parameters/buffers (BN statistics, digital
  layers, tile alphas and scales) and each tile's programming reference are restored before programming,
  so a ``per_chip`` hook (TSB training, BN recalibration, re-programming a tile) cannot leak into the
  next chip.
- ``t == 0``: the freshly programmed weights as they are (no read noise; drift compensation alpha = 1).
  ``t > 0``: every tile drifted to ``t`` from its programmed state. Times are evaluated in ascending order
  and reported in the order given.
- Afterwards the model holds its starting state with each tile at its target weights, unprogrammed.
- Reproducibility: programming, drift and output noise come from torch's RNG (seeded per chip and step).
  Torch tiles are bit-reproducible; AIHWKit 1.1's C++ tiles draw per-MVM IO noise (out_noise, ...) from their own
  unseeded
  RNG, so with noisy IO they reproduce only statistically (with ``is_perfect`` IO they are exact).
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.accuracy import chip_accuracy
from tsb_aihw.evaluation.stats import Summary, summarize
from tsb_aihw.evaluation.times import format_time, parse_times
from tsb_aihw.utils.io import JsonObject, atomic_write_csv, atomic_write_json, check_accuracies, ensure_writable_dir

PerChip = Callable[[nn.Module, int], Any]
Evaluate = Callable[[nn.Module, Iterable], float]
CELL_VERSION = 2


@dataclass
class MonteCarloResult:
    """Accuracy of ``chips`` chips at each drift time: ``accuracies[chip][time]``."""

    times: list[float]
    seed: int
    chip_seeds: list[int]
    accuracies: list[list[float]]
    chip_seconds: list[float] = field(default_factory=list)
    chip_extras: list[Any] = field(default_factory=list)
    resumed_chips: int = 0
    chip_digests: list[str] = field(default_factory=list)  # programmed backbone of each chip (analog.chip)

    @property
    def chips(self) -> int:
        return len(self.accuracies)

    @property
    def time_labels(self) -> list[str]:
        return [format_time(t) for t in self.times]

    def at(self, t: float | str) -> list[float]:
        """Per-chip accuracies at drift time ``t`` (seconds or a string like "1d")."""
        (seconds,) = parse_times([t])
        if seconds not in self.times:
            raise ConfigError(f"time {t!r} was not evaluated; evaluated times: {', '.join(self.time_labels)}")
        j = self.times.index(seconds)
        return [row[j] for row in self.accuracies]

    @property
    def summaries(self) -> list[Summary]:
        """One :class:`Summary` per time, over chips."""
        return [summarize(self.at(t)) for t in self.times]

    def to_dict(self) -> JsonObject:
        return {
            "seed": self.seed,
            "chips": self.chips,
            "times": self.times,
            "time_labels": self.time_labels,
            "chip_seeds": self.chip_seeds,
            "accuracies": self.accuracies,
            "chip_seconds": self.chip_seconds,
            "chip_extras": self.chip_extras,
            "resumed_chips": self.resumed_chips,
            "chip_digests": self.chip_digests,
            "summary": {label: s.to_dict() for label, s in zip(self.time_labels, self.summaries)},
        }

    def save(self, directory: str | Path, name: str = "monte_carlo") -> dict[str, Path]:
        """``<name>.json`` (everything + provenance), ``<name>.csv`` (one row per chip and time) and
        ``<name>_summary.csv`` (one row per time), each written atomically."""
        from tsb_aihw.utils.provenance import provenance

        out = ensure_writable_dir(directory)
        rows = [
            {"chip": c, "chip_seed": self.chip_seeds[c], "time_s": t, "time_label": label, "accuracy": acc}
            for c, row in enumerate(self.accuracies)
            for t, label, acc in zip(self.times, self.time_labels, row)
        ]
        summary_rows = [{"time_s": t, "time_label": label, **s.to_dict()}
                        for t, label, s in zip(self.times, self.time_labels, self.summaries)]
        return {
            "json": atomic_write_json(out / f"{name}.json", {**self.to_dict(), "provenance": provenance().to_dict()}),
            "csv": atomic_write_csv(out / f"{name}.csv", rows),
            "summary_csv": atomic_write_csv(out / f"{name}_summary.csv", summary_rows),
        }


class _ModelState:
    """Everything a chip run may change that the next chip must not inherit."""

    def __init__(self, model: nn.Module) -> None:
        self.tensors = {k: v.detach().clone() for k, v in _named_tensors(model)}
        self.references: list[tuple[Any, torch.Tensor]] = []
        for tile in _tiles(model):
            ref = getattr(tile, "reference_combined_weights", None)
            if ref is None:  # never programmed: the current (target) weights are the reference
                ref = torch.as_tensor(tile.tile.get_weights())
            self.references.append((tile, ref.detach().clone()))

    def fingerprint(self) -> str:
        """Hash of the starting state, so a checkpoint is never resumed with a different model."""
        h = hashlib.sha256()
        named = sorted(self.tensors.items())
        named += [(f"reference{i}", ref) for i, (_, ref) in enumerate(self.references)]
        for name, tensor in named:
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()[:16]

    @torch.no_grad()
    def restore(self, model: nn.Module) -> None:
        current = dict(_named_tensors(model))
        for name, saved in self.tensors.items():
            module_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(module_name) if module_name else model
            if attr in owner._buffers:  # alpha becomes 0-dim after drift: replace, do not copy
                owner._buffers[attr] = saved.clone()
            elif current[name].shape == saved.shape:
                current[name].copy_(saved)
            else:
                current[name].data = saved.clone()
        for tile, ref in self.references:
            tile.reference_combined_weights = ref.clone()

    @torch.no_grad()
    def reset(self, model: nn.Module) -> None:
        """Restore, then put each tile back to its target weights, unprogrammed (as after conversion)."""
        self.restore(model)
        for tile, ref in self.references:
            tile.tile.set_weights(ref.clone())
            if hasattr(tile, "programmed_weights"):
                tile.programmed_weights = None
                tile.drift_noise_parameters = None


def _named_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters and buffers, without AIHWKit's per-tile ``analog_ctx``: it holds no state of its own (a 0-dim
    placeholder in aihwkit 1.1; in 1.2 a view of the tile's weights that refuses to be read or copied), and the
    weights it stands for are saved through the tile's own parameters."""
    return [(n, t) for n, t in list(model.named_parameters()) + list(model.named_buffers())
            if type(t).__name__ != "AnalogContext"]


def _tiles(model: nn.Module) -> list[Any]:
    seen: dict[int, Any] = {}
    for tile in model.analog_tiles():
        seen.setdefault(id(tile), tile)
    return list(seen.values())


def _check_inputs(model: nn.Module, chips: int, times: Sequence[float]) -> None:
    if not (hasattr(model, "program_analog_weights") and hasattr(model, "drift_analog_weights")):
        raise ConfigError("monte_carlo needs an AIHWKit analog model; convert it with tsb_aihw.analog."
                          "to_analog(model, preset) or call evaluate_drift(model, data, preset)")
    if not isinstance(chips, int) or isinstance(chips, bool) or chips < 1:
        raise ConfigError(f"chips must be a positive integer, got {chips!r}")
    if not times:
        raise ConfigError("no drift times given; pass e.g. times=['0', '1h', '1d', '1y']")
    if len(set(times)) != len(times):
        raise ConfigError(f"drift times contain duplicates: {[format_time(t) for t in times]}")


def _jsonable(extra: Any) -> Any:
    if extra is None or isinstance(extra, (bool, int, float, str, list, dict)):
        return extra
    if hasattr(extra, "to_dict"):
        return extra.to_dict()
    raise ConfigError(f"per_chip returned a {type(extra).__name__}; return None, a dict or an object with "
                      "to_dict()")


def monte_carlo(
    analog_model: nn.Module,
    loader: Iterable,
    *,
    chips: int,
    times: Sequence[float | str],
    seed: int,
    preset: Any = None,
    per_chip: PerChip | None = None,
    evaluate: Evaluate | None = None,
    progress: bool = True,
    out: str | Path | None = None,
    device: str | torch.device = "cpu",
    fast: bool | None = None,
) -> MonteCarloResult:
    """Accuracy over ``chips`` simulated chips at each drift time (see the module docstring).

    ``per_chip(model, chip_index)`` runs after programming and before drift, e.g. TSB training against that
    chip or BN recalibration; whatever it returns (None, a dict, or an object with ``to_dict``) is stored per
    chip. ``evaluate(model, loader) -> float`` defaults to top-1 accuracy (periphery noise seeded per chip and
    time). With ``out`` (a directory) each finished chip is saved in a result store
    (:class:`tsb_aihw.utils.store.ResultStore`) and a re-run with the same seed, times and starting model state
    skips finished chips; another configuration there is refused (the hook and ``evaluate`` cannot be checked:
    use one directory per study arm). ``per_chip`` runs with torch's RNG seeded for the chip, so anything
    random it does is reproducible. ``preset`` is recorded with the chip (programming cost).
    """
    from tsb_aihw.analog.chip import Chip
    from tsb_aihw.parallel.cells import run_cells
    from tsb_aihw.parallel.executor import SerialExecutor
    from tsb_aihw.utils.store import ResultStore

    seconds = parse_times(times)
    _check_inputs(analog_model, chips, seconds)
    state = _ModelState(analog_model)
    identity = {"version": CELL_VERSION, "seed": seed, "times": seconds, "model": state.fingerprint()}
    store: Any = ResultStore(out, "monte-carlo", identity) if out is not None else _MemoryStore()

    def run_chip(task: _ChipTask) -> ChipRow:
        start = time.perf_counter()
        chip = Chip(analog_model, preset, seed, task.index)
        state.restore(analog_model)
        digest = chip.program()
        with chip.rng("per-chip"):
            extra = _jsonable(per_chip(analog_model, task.index)) if per_chip is not None else None
        analog_model.eval()
        accs = evaluate_chip(chip, loader, seconds, device=device, fast=fast, evaluate=evaluate)
        return ChipRow(chip=task.index, seed=chip.chip_seed, accuracies=accs, digest=digest,
                       seconds=time.perf_counter() - start, extra=extra)

    tasks = [_ChipTask(f"chip#{c}", c) for c in range(chips)]
    try:
        resumed = run_cells(run_chip, tasks, store, SerialExecutor(), desc="chips", progress=progress)
    finally:
        state.reset(analog_model)
    kept = [check_chip_row(store.get(t.key), str(getattr(store, "path", "monte_carlo"))) for t in tasks]
    return MonteCarloResult(
        times=seconds, seed=seed, chip_seeds=[r.seed for r in kept], accuracies=[r.accuracies for r in kept],
        chip_seconds=[r.seconds for r in kept], chip_extras=[r.extra for r in kept], resumed_chips=resumed,
        chip_digests=[r.digest for r in kept],
    )


def evaluate_chip(chip: Any, loader: Iterable, seconds: Sequence[float], device: str | torch.device = "cpu",
                  fast: bool | str | None = None, evaluate: Evaluate | None = None) -> list[float]:
    """Accuracy of a programmed :class:`~tsb_aihw.analog.chip.Chip` at each time (drifted in ascending order,
    reported in the order given), periphery noise seeded per chip and time."""
    accs = [math.nan] * len(seconds)
    for j in sorted(range(len(seconds)), key=lambda i: seconds[i]):
        if evaluate is None:
            accs[j] = chip_accuracy(chip, loader, seconds[j], device=device, fast=fast)
        else:
            chip.drift(seconds[j])
            with chip.rng("eval", repr(float(seconds[j]))):
                accs[j] = float(evaluate(chip.model, loader))
    return accs


@dataclass(frozen=True)
class _ChipTask:
    key: str
    index: int


class _MemoryStore(dict):
    """A store that keeps cells in memory (no ``out`` directory)."""

    def put(self, key: str, value: Any) -> None:
        self[key] = value


@dataclass(frozen=True)
class ChipRow:
    """One chip's cell as the result store keeps it: its seed, accuracy per time, programmed fingerprint, wall
    time and what the per-chip hook returned (JSON-able, or None)."""

    chip: int | None
    seed: int
    accuracies: list[float]
    digest: str
    seconds: float
    extra: Any = None

    def to_dict(self) -> JsonObject:
        return asdict(self)


def check_chip_row(row: Any, where: str) -> ChipRow:
    """A stored chip row, type-checked before use (an edited store is an error, never used)."""
    if not isinstance(row, dict) or not {"seed", "accuracies", "seconds", "digest"} <= set(row):
        raise ConfigError(f"{where}: a stored chip is mis-shaped; the store was edited or damaged (move it aside "
                          "with --move-aside to recompute)")
    check_accuracies(row["accuracies"], where)
    return ChipRow(chip=row.get("chip"), seed=row["seed"], accuracies=row["accuracies"], digest=row["digest"],
                   seconds=row["seconds"], extra=row.get("extra"))
