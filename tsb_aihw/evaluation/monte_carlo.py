"""Monte-Carlo over chips: program a fresh chip, optionally adapt to it, drift, evaluate; resumable.

Conventions
- Chip ``i`` is seeded with ``derive_seed(seed, i)`` right before it is programmed, so every chip's
  result is independent of run order, of other chips and of resuming.
- Every chip starts from the same model state: digital parameters/buffers (BN statistics, digital
  layers, tile alphas and scales) and each tile's programming reference are restored before programming,
  so a ``per_chip`` hook (TSB training, BN recalibration, re-programming a tile) cannot leak into the
  next chip.
- ``t == 0``: the freshly programmed weights as they are (no drift call, so no read noise; drift
  compensation alpha = 1). ``t > 0``: ``drift_analog_weights(t)``, which always starts from the
  programmed state. Times are evaluated in ascending order and reported in the order given.
- Afterwards the model holds its starting state with each tile at its target weights, unprogrammed.
- Reproducibility: programming and drift noise come from torch's RNG (seeded per chip). Torch tiles are
  bit-reproducible; AIHWKit 1.1's C++ tiles draw per-MVM IO noise (out_noise, ...) from their own unseeded
  RNG, so with noisy IO they reproduce only statistically (with ``is_perfect`` IO they are exact).
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.accuracy import evaluate_accuracy
from tsb_aihw.evaluation.stats import Summary, summarize
from tsb_aihw.evaluation.times import format_time, parse_times
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, ensure_writable_dir, read_json
from tsb_aihw.utils.seeding import derive_seed, seed_everything

PerChip = Callable[[nn.Module, int], Any]
Evaluate = Callable[[nn.Module, Iterable], float]
Program = Callable[[nn.Module, int], None]
Drift = Callable[[nn.Module, float, int], None]
CHECKPOINT_VERSION = 1


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

    def to_dict(self) -> dict[str, Any]:
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
            "json": atomic_write_json(out / f"{name}.json", {**self.to_dict(), "provenance": provenance()}),
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
    return list(model.named_parameters()) + list(model.named_buffers())


def _tiles(model: nn.Module) -> list[Any]:
    seen: dict[int, Any] = {}
    for tile in model.analog_tiles():
        seen.setdefault(id(tile), tile)
    return list(seen.values())


@torch.no_grad()
def _reset_alpha(model: nn.Module) -> None:
    """Drift compensation factor 1: right after programming the programmed weights are the baseline."""
    from tsb_aihw.analog.tiles import reset_drift_compensation  # lazy: the analog package pulls in AIHWKit

    for tile in _tiles(model):
        reset_drift_compensation(tile)


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


def _load_checkpoint(path: Path, key: dict[str, Any]) -> dict[int, dict[str, Any]]:
    if not path.exists():
        return {}
    data = read_json(path)
    found = {k: data.get(k) for k in key}
    if found != key:
        raise ConfigError(f"checkpoint {path} belongs to another study ({found}; now {key}); delete it or "
                          "choose another checkpoint_path")
    return {int(row["chip"]): row for row in data["rows"]}


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
    per_chip: PerChip | None = None,
    evaluate: Evaluate | None = None,
    progress: bool = True,
    checkpoint_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    program: Program | None = None,
    drift: Drift | None = None,
) -> MonteCarloResult:
    """Accuracy over ``chips`` simulated chips at each drift time (see the module docstring).

    ``per_chip(model, chip_index)`` runs after programming and before drift, e.g. TSB training against that
    chip or BN recalibration; whatever it returns (None, a dict, or an object with ``to_dict``) is stored per
    chip. ``evaluate(model, loader) -> float`` defaults to top-1 accuracy. With ``checkpoint_path`` each
    finished chip is written atomically and a re-run with the same seed, times and starting model state
    skips finished chips (the hook and ``evaluate`` cannot be checked: use one checkpoint per study arm).
    ``per_chip`` runs with torch's RNG seeded for the chip, so anything random it does is reproducible.
    ``program(model, chip_seed)`` / ``drift(model, t, chip_seed)`` replace ``program_analog_weights()`` /
    ``drift_analog_weights(t)``, e.g. to seed each tile separately so that methods share chip noise.
    """
    from tqdm.auto import tqdm

    seconds = parse_times(times)
    _check_inputs(analog_model, chips, seconds)
    if evaluate is None:
        def evaluate(m: nn.Module, data: Iterable) -> float:
            return evaluate_accuracy(m, data, device)
    order = sorted(range(len(seconds)), key=lambda j: seconds[j])
    state = _ModelState(analog_model)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    key = {"version": CHECKPOINT_VERSION, "seed": seed, "times": seconds}
    if ckpt is not None:
        key["model"] = state.fingerprint()
    done = _load_checkpoint(ckpt, key) if ckpt is not None else {}
    rows: dict[int, dict[str, Any]] = {c: r for c, r in done.items()}
    resumed = sum(1 for c in done if c < chips)
    try:
        for chip in tqdm(range(chips), desc="chips", disable=not progress, leave=False):
            if chip in rows:
                continue
            start = time.perf_counter()
            chip_seed = derive_seed(seed, chip)
            state.restore(analog_model)
            analog_model.eval()
            seed_everything(chip_seed)
            if program is None:
                analog_model.program_analog_weights()
            else:
                program(analog_model, chip_seed)
            _reset_alpha(analog_model)
            extra = _jsonable(per_chip(analog_model, chip)) if per_chip is not None else None
            analog_model.eval()
            accs = [math.nan] * len(seconds)
            for j in order:
                if seconds[j] > 0 and drift is None:
                    analog_model.drift_analog_weights(seconds[j])
                elif seconds[j] > 0:
                    drift(analog_model, seconds[j], chip_seed)
                accs[j] = float(evaluate(analog_model, loader))
            rows[chip] = {"chip": chip, "seed": chip_seed, "accuracies": accs,
                          "seconds": time.perf_counter() - start, "extra": extra}
            if ckpt is not None:
                atomic_write_json(ckpt, {**key, "rows": [rows[c] for c in sorted(rows)]})
    finally:
        state.reset(analog_model)
    kept = [rows[c] for c in range(chips)]
    return MonteCarloResult(
        times=seconds, seed=seed, chip_seeds=[r["seed"] for r in kept],
        accuracies=[r["accuracies"] for r in kept], chip_seconds=[r["seconds"] for r in kept],
        chip_extras=[r["extra"] for r in kept], resumed_chips=resumed,
    )
