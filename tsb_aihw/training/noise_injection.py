"""Noise-injection (hardware-aware) training in plain PyTorch.

Why not AIHWKit's HWA training: the same additive-Gaussian weight modifier through analog tiles costs
5-15x more per step on CPU (docs/notes/aihwkit-1.1-facts.md section 6), while the noise model of
docs/notes/tsb-method.md section 3 needs nothing but ``W + N(0, (std * max|W_layer|)^2)``. A
``torch.nn.utils.parametrize`` parametrization adds it, so the model stays a plain ``nn.Module`` and the noise is
removed afterwards.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from tsb_aihw.errors import ConfigError
from tsb_aihw.training.checkpointing import Checkpointing, TrainState
from tsb_aihw.training.loop import (
    EarlyStop,
    OptimArgs,
    TrainConfig,
    TrainResult,
    check_recipe_data,
    fit,
    resolve_optim,
    setup_optimizer,
)
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.device import resolve_device
from tsb_aihw.utils.seeding import derive_seed, reseed_loader, seed_everything

NOISY_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


class WeightNoise(nn.Module):
    """Parametrization ``W -> W + std * max|W| * N(0, 1)`` in train mode, identity in eval mode.

    ``max|W|`` is the abs-max over the whole tensor, recomputed at every draw and detached, so the
    gradient reaching the clean weight is the gradient at the noisy weight (straight-through, as in
    NF_Training). A fresh draw is made every time the weight is evaluated; inside
    ``parametrize.cached()`` a module called at several sites (the shared block) sees one draw per forward,
    as one physical tile would.
    """

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = float(std)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0.0:
            return weight
        scale = weight.detach().abs().max() * self.std
        return weight + scale * torch.randn_like(weight)

    def extra_repr(self) -> str:
        return f"std={self.std:g}"


def noisy_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv/Linear layers whose ``weight`` gets noise (each module once, even when used at several sites)."""
    return [(name, m) for name, m in model.named_modules() if is_digital_layer(m)]


def is_digital_layer(m: nn.Module) -> bool:
    """Conv/Linear incl. subclasses (e.g. a TSB conv); AIHWKit analog layers keep their weights in tiles."""
    return isinstance(m, NOISY_LAYERS) and not hasattr(m, "analog_tiles")


def is_analog(model: nn.Module) -> bool:
    return any(hasattr(m, "analog_tiles") for m in model.modules())


def add_weight_noise(model: nn.Module, std: float, modules: Iterable[nn.Module] | None = None
                     ) -> list[nn.Module]:
    """Register :class:`WeightNoise` on every Conv/Linear weight of ``model`` (or on ``modules``)."""
    if std < 0:
        raise ConfigError(f"noise_std must be >= 0, got {std}")
    if modules is None:
        if is_analog(model):
            raise ConfigError("weight-noise training runs on the digital model (or a digital twin); train it "
                              "before to_analog()")
        targets = [m for _, m in noisy_layers(model)]
    else:
        targets = list(modules)
        if not all(is_digital_layer(m) for m in targets):
            raise ConfigError("weight noise applies to digital Conv/Linear layers only")
    for m in targets:
        if parametrize.is_parametrized(m, "weight"):
            raise ConfigError(f"{type(m).__name__}.weight is already parametrized; remove that "
                              "parametrization (or the weight noise of an interrupted run) first")
        parametrize.register_parametrization(m, "weight", WeightNoise(std))
    return targets


def remove_weight_noise(modules: Iterable[nn.Module]) -> None:
    """Remove the noise parametrization; the original (clean, trained) Parameter objects come back."""
    for m in modules:
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
            # Conv/Linear register weight before bias: keep state_dict key order as it was.
            m._parameters = {"weight": m._parameters.pop("weight"), **m._parameters}


@contextmanager
def weight_noise(model: nn.Module, std: float, modules: Iterable[nn.Module] | None = None
                 ) -> Iterator[list[nn.Module]]:
    """Context manager: weight noise on while inside (in train mode), always removed on exit."""
    targets = add_weight_noise(model, std, modules)
    try:
        yield targets
    finally:
        remove_weight_noise(targets)


#: ``train_noise_injection``'s keyword defaults when no recipe is given.
NOISE_INJECTION_DEFAULTS = OptimArgs(optimizer="adam", lr=1e-3, schedule="cosine", weight_decay=0.0)


def noise_ramp(modules: Iterable[nn.Module], recipe: TrainRecipe | None) -> Callable[[int, int], None] | None:
    """``on_step`` callback setting each layer's noise std to ``target * recipe.noise_scale(step, total)``.

    Why: full-strength noise on freshly initialised weights can keep a deep net from ever leaving chance;
    ramping it in lets the net first find a solution and then make it robust. None if there is no warm-up."""
    if recipe is None or recipe.noise_warmup_fraction == 0:
        return None
    noises = [n for m in modules for n in m.modules() if isinstance(n, WeightNoise)]
    targets = [n.std for n in noises]

    def on_step(step: int, total_steps: int) -> None:
        scale = recipe.noise_scale(step, total_steps)
        for noise, target in zip(noises, targets):
            noise.std = target * scale

    return on_step


def _all_train(model: nn.Module) -> None:
    model.train()


def cached_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One noise draw per weight per forward, even for a module used at several sites."""
    with parametrize.cached():
        return model(x)


def train_noise_injection(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    noise_std: float,
    epochs: int,
    lr: float | None = None,
    optimizer: str | None = None,
    schedule: str | None = None,
    weight_decay: float | None = None,
    early_stop: EarlyStop | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    recipe: TrainRecipe | None = None,
    checkpointing: Checkpointing | None = None,
) -> TrainResult:
    """Train all parameters with fresh Gaussian weight noise on every train-mode forward.

    ``noise_std`` is relative to each layer's abs-max (for the section 3 convention pass
    ``0.7776 * sigma``, i.e. ``preset.training_noise_std``). Biases and BN stay clean; eval mode is
    noise-free. With ``val_loader`` the best-val-accuracy state is restored (clean accuracy, like
    NF_Training's best checkpoint). ``epochs`` is the budget, ``early_stop`` the "early convergence" rule.
    The model is returned to eval mode, noise removed, trained in place. ``seed`` seeds the weight noise and
    resets the loader's shuffle generator (``make_loader``), so the run depends on nothing that ran before;
    a non-finite loss stops training with an error naming the cause (inputs, weights or learning rate).

    Without ``recipe``: ``optimizer`` (default adam), ``lr`` (1e-3), per-epoch ``schedule`` (cosine) and
    ``weight_decay`` (0) as before. With a :class:`TrainRecipe` those come from the recipe (passing them too
    is an error), plus its per-step LR curve, label smoothing, batch augmentation (the dataset must be
    un-augmented), clipping, noise warm-up and precision; its augmentation is seeded from ``seed``.
    ``checkpointing`` (:class:`~tsb_aihw.training.checkpointing.Checkpointing`): snapshot the training state
    to resume an interrupted run bit-exactly (a ``resume.pt`` of this run found there is continued) and keep
    the stops early backbones anneal from (``training.stops.anneal_from_stop``).
    """
    return _train(model, train_loader, val_loader, noise_std=noise_std, epochs=epochs,
                  given=OptimArgs(optimizer, lr, schedule, weight_decay), early_stop=early_stop, device=device,
                  seed=seed, progress=progress, recipe=recipe, checkpointing=checkpointing, anneal_from=None)


def _train(model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, *, noise_std: float, epochs: int,
           given: OptimArgs, early_stop: EarlyStop | None, device: str | torch.device, seed: int, progress: bool,
           recipe: TrainRecipe | None, checkpointing: Checkpointing | None, anneal_from: TrainState | None
           ) -> TrainResult:
    """``train_noise_injection``, or (``anneal_from``) the anneal of one of its stops: the same set-up, so an
    anneal continues exactly the run its stop came from."""
    resolve_optim(epochs, recipe, given, NOISE_INJECTION_DEFAULTS)  # bad values fail before anything runs
    check_recipe_data(recipe, train_loader)
    dev = resolve_device(device)
    seed_everything(seed)
    reseed_loader(train_loader, derive_seed(seed, "batches"))  # same batches whatever ran before
    model.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters (all requires_grad=False)")
    opt, sched, optim = setup_optimizer(params, epochs, recipe, given, NOISE_INJECTION_DEFAULTS)
    start = time.perf_counter()
    with weight_noise(model, noise_std) as layers:  # the clean Parameters move under parametrizations.*.original
        out = fit(
            model, train_loader, val_loader, epochs=epochs, optimizer=opt, scheduler=sched,
            set_train_mode=_all_train, forward=cached_forward, device=dev, early_stop=early_stop,
            progress=progress, desc=f"noise-injection std={noise_std:g}", recipe=recipe,
            seed=derive_seed(seed, "augment"), on_step=noise_ramp(layers, recipe), method="noise_injection",
            noise_std=noise_std, run_seed=seed, checkpointing=checkpointing, anneal_from=anneal_from,
        )
    model.eval()
    return TrainResult(
        method="noise_injection", epochs_budget=epochs, epochs_run=len(out.history),
        wall_time_s=out.earlier_s + time.perf_counter() - start, history=out.history, best_epoch=out.best_epoch,
        best_val_acc=out.best_val_acc, stopped_early=out.stop_reason is not None, stop_reason=out.stop_reason,
        restored_best=out.restored_best, trainable_params=sum(p.numel() for p in params), seed=seed,
        config=TrainConfig(noise_std=noise_std, optim=optim, precision=out.precision, early_stop=early_stop,
                           stop=anneal_from.plan if anneal_from is not None else None),
        precision=out.precision,
    )
