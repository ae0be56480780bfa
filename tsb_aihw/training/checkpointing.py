"""Training-state snapshots: a run resumes bit-exactly from its last one, and early backbones branch off its stops.

One mechanism for both jobs: a :class:`TrainState` is everything ``fit`` needs to go on after ``step`` optimizer
steps as if it had never stopped (weights, optimizer and scheduler state, every random generator, the epoch's
partial sums, history and best-val state). ``resume.pt`` in a :class:`Checkpointing` directory is the latest one,
overwritten as the run goes; ``stop-<f>.pt`` is the one at the stop step of the early backbone at budget ``f``
(:class:`StopPlan`), kept, and annealed by ``training.stops.anneal_from_stop``.

Bit-exact resumption holds on the same machine and torch thread count for batch augmentation on the batch
(recipes) and for per-item augmentation in the main process (``num_workers=0``): the epoch's first batches are
replayed through the loader (no model) from the generator states at the epoch's start.
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from tsb_aihw.errors import ConfigError
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.io import atomic_write_bytes

FORMAT = "tsb-aihw-train-state-1"
RESUME_FILE = "resume.pt"


@dataclass(frozen=True)
class Checkpointing:
    """Where and when a run snapshots its training state.

    ``directory``: holds ``resume.pt`` (a run that finds one there continues from it) and the stops.
    ``every_steps``: write ``resume.pt`` every that many optimizer steps (None: at the end of each epoch).
    ``stops``: budgets f in (0, 1) of early backbones: the state at each one's stop step is kept as
    ``stop-<f>.pt`` (needs a recipe with schedule ``wsd``; :func:`plan_stop`). Stops do not change the run.
    """

    directory: Path
    every_steps: int | None = None
    stops: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        object.__setattr__(self, "stops", tuple(self.stops))
        if self.every_steps is not None and (isinstance(self.every_steps, bool) or not isinstance(
                self.every_steps, int) or self.every_steps < 1):
            raise ConfigError(f"checkpoint every_steps must be a positive integer or None, got {self.every_steps!r}")
        for f in self.stops:
            check_budget_fraction(f)
        if len(set(self.stops)) != len(self.stops):
            raise ConfigError(f"stop budgets must differ from each other, got {list(self.stops)}")

    @property
    def resume_path(self) -> Path:
        return self.directory / RESUME_FILE

    def stop_path(self, budget: float) -> Path:
        return stop_path(self.directory, budget)


def stop_path(directory: str | Path, budget: float) -> Path:
    """The file of the stop for the early backbone at ``budget`` in a checkpoint directory."""
    return Path(directory) / f"stop-{check_budget_fraction(budget):g}.pt"


def check_budget_fraction(budget: Any) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < 1:
        raise ConfigError(f"a stop budget is a fraction of the full run in (0, 1), got {budget!r}")
    return float(budget)


@dataclass(frozen=True)
class StopPlan:
    """The early backbone at ``budget`` f of a run of ``total_steps`` steps: the run's state after ``stop_step``
    steps, annealed for ``anneal_steps`` steps; stop + anneal = round(f * total_steps) steps, its whole cost.

    The anneal is ``decay_fraction`` of the early backbone's own steps, as the full run's decay is of its."""

    budget: float
    total_steps: int
    stop_step: int
    anneal_steps: int

    @property
    def steps(self) -> int:
        """Optimizer steps the early backbone costs (the stop's share of the run plus its anneal)."""
        return self.stop_step + self.anneal_steps

    def to_dict(self) -> dict[str, int | float]:
        """The plan as the early backbone's training meta records it (``stop``), its cost included."""
        return {"budget": self.budget, "stop_step": self.stop_step, "anneal_steps": self.anneal_steps,
                "total_steps": self.total_steps, "steps": self.steps}


def plan_stop(recipe: TrainRecipe | None, total_steps: int, budget: float) -> StopPlan:
    """Where the early backbone at ``budget`` stops and how long it anneals; ConfigError when the stop would fall
    outside the run's stable phase (in the warm-up, or in the decay, where the run's own LR is not the peak)."""
    f = check_budget_fraction(budget)
    if recipe is None or recipe.schedule != "wsd":
        raise ConfigError(f"stops need a recipe with schedule 'wsd' (warmup-stable-decay), got "
                          f"{'no recipe' if recipe is None else repr(recipe.schedule)}")
    first, last = recipe.stable_steps(total_steps)
    steps = round(f * total_steps)
    anneal = max(1, round(recipe.decay_fraction * steps))
    stop = steps - anneal
    if not (max(first, 1) <= stop <= last) or recipe.lr_at(stop, total_steps) != recipe.lr:
        raise ConfigError(f"stop budget {f:g} of a {total_steps}-step run stops after {stop} steps, outside the "
                          f"stable phase (after {max(first, 1)} to {last} steps); choose a budget between about "
                          f"{(max(first, 1) + 1) / total_steps / (1 - recipe.decay_fraction):.3g} and "
                          f"{min(0.999, last / total_steps / (1 - recipe.decay_fraction)):.3g}")
    return StopPlan(budget=f, total_steps=total_steps, stop_step=stop, anneal_steps=anneal)


@dataclass(frozen=True)
class RunInfo:
    """Which run a snapshot belongs to: it resumes only the same run (same method, noise, seed, budget, recipe and
    resolved precision)."""

    method: str
    noise_std: float
    seed: int
    epochs: int
    total_steps: int
    precision: str
    recipe: TrainRecipe | None

    def differences(self, other: "RunInfo") -> list[str]:
        return [f"{f.name} {getattr(self, f.name)!r} vs {getattr(other, f.name)!r}"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass
class EpochStart:
    """Generator states at the start of an epoch, before its loader was iterated: what replaying its first
    batches needs (the global generator also draws the shuffle of a loader without its own generator)."""

    cpu_rng: torch.Tensor
    loader_rng: torch.Tensor | None


@dataclass
class TrainState:
    """A run after ``step`` optimizer steps: in epoch ``epoch`` (1-based) with ``batch`` of its batches done
    (0: the epoch has not begun), ``elapsed_s`` seconds of training behind it. ``plan``: set on a stop."""

    run: RunInfo
    step: int
    epoch: int
    batch: int
    elapsed_s: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    cpu_rng: torch.Tensor
    cuda_rng: torch.Tensor | None
    augment_rng: torch.Tensor | None
    loader_rng: torch.Tensor | None  # the loader's shuffle generator between epochs (batch == 0)
    epoch_start: EpochStart | None
    epoch_lr: float
    sums: tuple[float, float, float]  # the epoch so far: loss sum, correct, seen
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    stop_reason: str | None = None
    plan: StopPlan | None = None

    def clean_model_state(self) -> dict[str, torch.Tensor]:
        """The weights under their plain names (the weight-noise parametrization's ``...original`` keys renamed),
        as ``model.state_dict()`` of the un-parametrized model has them."""
        return {k.replace(".parametrizations.weight.original", ".weight"): v for k, v in self.model.items()}


def save_state(state: TrainState, path: Path) -> Path:
    """Write ``state`` atomically (a kill never leaves half a snapshot)."""
    blob = _shallow(state)  # not dataclasses.asdict: it would deep-copy every tensor
    blob["run"] = _shallow(state.run) | {"recipe": state.run.recipe.to_dict() if state.run.recipe else None}
    blob["epoch_start"] = _shallow(state.epoch_start) if state.epoch_start is not None else None
    blob["plan"] = _shallow(state.plan) if state.plan is not None else None
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **blob}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | Path) -> TrainState:
    """A snapshot written by :func:`save_state`; one ConfigError line when the file is not one."""
    from tsb_aihw.utils.torchfile import read_state_dict

    blob = read_state_dict(path)  # weights_only: tensors and plain data only
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a tsb-aihw training-state snapshot ({FORMAT}); delete it or point "
                          "the run at another checkpoint directory")
    blob.pop("format")
    run = dict(blob.pop("run"))
    run["recipe"] = TrainRecipe.from_dict(run["recipe"]) if run["recipe"] is not None else None
    start = blob.pop("epoch_start")
    plan = blob.pop("plan")
    return TrainState(run=RunInfo(**run), epoch_start=EpochStart(**start) if start is not None else None,
                      plan=StopPlan(**plan) if plan is not None else None,
                      sums=tuple(blob.pop("sums")), **blob)


def check_same_run(state: TrainState, run: RunInfo, path: Path) -> None:
    """Refuse (one line) to resume a snapshot of another run."""
    differs = state.run.differences(run)
    if differs:
        raise ConfigError(f"{path} is a snapshot of another run ({'; '.join(differs)}); delete it, or point the "
                          "run at another checkpoint directory")


def plan_stops(recipe: TrainRecipe | None, total_steps: int, budgets: Sequence[float]) -> list[StopPlan]:
    plans = [plan_stop(recipe, total_steps, f) for f in budgets]
    steps = [p.stop_step for p in plans]
    if len(set(steps)) != len(steps):
        raise ConfigError(f"stop budgets {list(budgets)} fall on the same step of a {total_steps}-step run; "
                          "choose budgets further apart")
    return plans


def _shallow(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
