"""Early backbones as stops of (b)'s own run: (b) trains with a warmup-stable-decay recipe and keeps its state at
the stop step of each early budget (``Checkpointing(stops=...)``); the early backbone at budget f is that stop
annealed by a short decay, whose steps count in its budget (:class:`~tsb_aihw.training.checkpointing.StopPlan`).

Why: the frontier then costs one (b) plus short anneals, and every budget shares (b)'s trajectory, so "early
convergence" means the same training, stopped early.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.training.checkpointing import TrainState, load_state, stop_path
from tsb_aihw.training.loop import OptimArgs, TrainResult
from tsb_aihw.training.noise_injection import _train

__all__ = ["anneal_from_stop", "read_stop", "stop_path"]


def read_stop(path: str | Path) -> TrainState:
    """A stop written by (b)'s run (``stop-<f>.pt``); ConfigError when the file is a resume snapshot or no snapshot."""
    state = load_state(path)
    if state.plan is None:
        raise ConfigError(f"{path} is a resume snapshot, not a stop; anneal from a stop-<f>.pt of a run trained "
                          "with Checkpointing(stops=(f, ...))")
    if state.run.method != "noise_injection":
        raise ConfigError(f"{path} is a stop of a {state.run.method!r} run; anneals continue noise-injection runs")
    return state


def anneal_from_stop(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, stop: str | Path,
                     *, device: str | torch.device = "cpu", progress: bool = True) -> TrainResult:
    """The early backbone at the stop's budget: (b)'s state at the stop, trained on for the stop's anneal steps
    with the LR decaying from the peak to the recipe's end value (``TrainRecipe.anneal_lr_at``).

    ``model`` is a fresh model of (b)'s architecture (its weights are replaced by the stop's); ``train_loader`` must
    be (b)'s (same data, batch size and shuffle seed): the anneal sees the batches (b) would have seen next, with
    (b)'s noise, augmentation and optimizer state. The last state is kept (not the best-val epoch); the result's
    ``wall_time_s`` includes (b)'s time up to the stop, ``config["stop"]`` the plan (budget, steps) and
    ``history`` (b)'s epochs before the stop followed by the anneal's."""
    state = read_stop(stop)
    run = state.run
    if run.recipe is None:  # plan_stop refuses runs without a wsd recipe; a hand-made file could still lack it
        raise ConfigError(f"{stop} has no recipe; stops come from runs with a wsd recipe")
    return _train(model, train_loader, val_loader, noise_std=run.noise_std, epochs=run.epochs, given=OptimArgs(),
                  early_stop=None, device=device, seed=run.seed, progress=progress, recipe=run.recipe,
                  checkpointing=None, anneal_from=state)

