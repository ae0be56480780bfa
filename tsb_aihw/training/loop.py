"""The epoch loop both trainers share: budget, early stopping, best-val state, timing and history."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from tsb_aihw.errors import ConfigError, DataError
from tsb_aihw.evaluation.accuracy import evaluate_accuracy
from tsb_aihw.training.checkpointing import (
    Checkpointing,
    EpochStart,
    RunInfo,
    StopPlan,
    TrainState,
    check_same_run,
    load_state,
    plan_stops,
    save_state,
)
from tsb_aihw.training.recipe import OPTIMIZERS, TrainRecipe
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.precision import resolve_precision

SCHEDULES = ("cosine", "constant")  # the per-epoch schedules of the trainers' own keywords (no recipe)


@dataclass(frozen=True)
class EarlyStop:
    """"Early convergence" rule, checked after each epoch on the validation accuracy.

    Stops when val accuracy reaches ``fraction * target`` (if ``target`` is set), or when it has not improved
    by more than ``min_delta`` over the best so far for ``patience`` epochs (if ``patience`` is set), but
    never before ``min_epochs``. The epoch budget of the trainer is always an upper bound.
    """

    patience: int | None = None
    min_delta: float = 0.0
    target: float | None = None
    fraction: float = 1.0
    min_epochs: int = 1

    def __post_init__(self) -> None:
        if self.patience is None and self.target is None:
            raise ConfigError("EarlyStop needs patience=N and/or target=ACC; otherwise pass early_stop=None")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"EarlyStop patience must be >= 1, got {self.patience}")
        if self.min_delta < 0:
            raise ConfigError(f"EarlyStop min_delta must be >= 0, got {self.min_delta}")
        if self.target is not None and not 0 < self.target <= 1:
            raise ConfigError(f"EarlyStop target is an accuracy in (0, 1], got {self.target}")
        if not 0 < self.fraction <= 1:
            raise ConfigError(f"EarlyStop fraction must be in (0, 1], got {self.fraction}")
        if self.min_epochs < 1:
            raise ConfigError(f"EarlyStop min_epochs must be >= 1, got {self.min_epochs}")

    def reason(self, val_history: Sequence[float]) -> str | None:
        """Why training should stop after the last epoch of ``val_history``, or None to go on."""
        epochs = len(val_history)
        if epochs < self.min_epochs:
            return None
        if self.target is not None and val_history[-1] >= self.fraction * self.target:
            return f"val_acc {val_history[-1]:.4f} >= {self.fraction:g} x target {self.target:g}"
        if self.patience is not None and epochs > self.patience:
            best_before = max(val_history[: epochs - self.patience])
            if max(val_history[epochs - self.patience:]) <= best_before + self.min_delta:
                return f"no val_acc gain > {self.min_delta:g} in {self.patience} epochs"
        return None

    def to_dict(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class OptimizerSetup:
    """The optimizer a run trained with: its recipe's (``recipe`` set; ``fit`` sets every step's LR from it) or
    the trainer's keywords and defaults (a per-epoch ``schedule``)."""

    optimizer: str
    lr: float
    schedule: str
    weight_decay: float | None
    recipe: TrainRecipe | None = None

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"optimizer": self.optimizer, "lr": self.lr, "schedule": self.schedule,
                           "weight_decay": self.weight_decay}
        return out if self.recipe is None else out | {"recipe": self.recipe.to_dict()}


@dataclass(frozen=True)
class TrainConfig:
    """What a training run was asked for and ran in (``TrainResult.config``): its training noise, optimizer, the
    precision it used, its early-stop rule and, for an early backbone annealed from (b)'s stop, the stop's plan."""

    noise_std: float
    optim: OptimizerSetup
    precision: str
    early_stop: EarlyStop | None = None
    backbone_noise_std: float | None = None  # block training only
    stop: StopPlan | None = None

    def to_dict(self) -> JsonObject:
        """Flat, as the trainers always reported it (keys a kind of run never had left out)."""
        out: JsonObject = {"noise_std": self.noise_std}
        if self.backbone_noise_std is not None:
            out["backbone_noise_std"] = self.backbone_noise_std
        out |= self.optim.to_dict() | {"precision": self.precision,
                                       "early_stop": self.early_stop.to_dict() if self.early_stop else None}
        return out if self.stop is None else out | {"stop": self.stop.to_dict()}


@dataclass
class TrainResult:
    """What a training run did: epochs, wall time (a resumed run's earlier part included), per-epoch history, the
    best validation epoch and the precision it ran in."""

    method: str
    epochs_budget: int
    epochs_run: int
    wall_time_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    stopped_early: bool = False
    stop_reason: str | None = None
    restored_best: bool = False
    trainable_params: int = 0
    seed: int = 0
    config: TrainConfig | None = None
    precision: str = "fp32"  # what the forward and backward ran in (resolved: fp32 or bf16, never auto)

    @property
    def seconds_per_epoch(self) -> float:
        return self.wall_time_s / max(self.epochs_run, 1)

    @property
    def final_train_loss(self) -> float | None:
        return self.history[-1]["train_loss"] if self.history else None

    def to_dict(self) -> JsonObject:
        out = asdict(self)
        out["config"] = self.config.to_dict() if self.config is not None else {}
        out["seconds_per_epoch"] = self.seconds_per_epoch
        return out


def make_optimizer(params: list[nn.Parameter], name: str, lr: float, weight_decay: float = 0.0, *,
                   momentum: float = 0.9, nesterov: bool = False) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class OptimArgs:
    """A trainer's own optimizer keywords, used when no recipe is given (None = the trainer's default)."""

    optimizer: str | None = None
    lr: float | None = None
    schedule: str | None = None
    weight_decay: float | None = None


def resolve_optim(epochs: int, recipe: TrainRecipe | None, given: OptimArgs, defaults: OptimArgs
                  ) -> OptimArgs | None:
    """Validate the epoch budget and the optimizer settings; the keywords-or-defaults in use (None = recipe).

    A recipe owns optimizer, lr, schedule and weight decay; passing any of them as keywords too is an error
    rather than a silent choice of one."""
    if recipe is not None:
        clash = [k for k, v in asdict(given).items() if v is not None]
        if clash:
            raise ConfigError(f"pass {', '.join(clash)} inside the recipe, not as keywords next to recipe=...")
        check_budget(epochs, recipe.lr)
        return None
    args = OptimArgs(*(g if g is not None else d
                       for g, d in zip(asdict(given).values(), asdict(defaults).values())))
    check_budget(epochs, args.lr)  # type: ignore[arg-type]
    if args.optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {args.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if args.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {args.schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return args


def setup_optimizer(params: list[nn.Parameter], epochs: int, recipe: TrainRecipe | None, given: OptimArgs,
                    defaults: OptimArgs) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None,
                                                  OptimizerSetup]:
    """(optimizer, per-epoch scheduler or None, what it is) from a recipe or from the keywords.

    Without a recipe the keywords (or ``defaults``) behave as before: a per-epoch scheduler; with one, the
    scheduler is None and ``fit`` sets the LR of every step from the recipe."""
    args = resolve_optim(epochs, recipe, given, defaults)
    if args is None:
        assert recipe is not None
        opt = make_optimizer(params, recipe.optimizer, recipe.lr, recipe.weight_decay,
                             momentum=recipe.momentum, nesterov=recipe.nesterov)
        return opt, None, OptimizerSetup(optimizer=recipe.optimizer, lr=recipe.lr, schedule=recipe.schedule,
                                          weight_decay=recipe.weight_decay, recipe=recipe)
    assert args.optimizer is not None and args.lr is not None and args.schedule is not None
    opt = make_optimizer(params, args.optimizer, args.lr, args.weight_decay or 0.0)
    return opt, make_scheduler(opt, args.schedule, epochs), OptimizerSetup(
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, weight_decay=args.weight_decay)


def check_recipe_data(recipe: TrainRecipe | None, train_loader: Iterable) -> None:
    """Batch augmentation on top of a per-item augmented dataset would augment twice: refuse it."""
    info = getattr(getattr(train_loader, "dataset", None), "info", None)
    if recipe is not None and recipe.augment != "none" and getattr(info, "augment", False):
        raise ConfigError(f"recipe augment={recipe.augment!r} augments whole batches, but the training dataset "
                          "already augments per item; load it with get_dataset(..., augment=False)")


def make_scheduler(opt: torch.optim.Optimizer, name: str, epochs: int
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if name == "constant":
        return None
    raise ConfigError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def check_budget(epochs: int, lr: float) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ConfigError(f"learning rate must be a finite number > 0, got {lr!r}")


@dataclass
class FitOutcome:
    """What ``fit`` did: per-epoch history, the best-val epoch (restored or not), why it stopped early, the
    precision it ran in (resolved, never ``auto``), optimizer steps done and the seconds of training a resumed
    run (or a stop) had behind it before this process."""

    history: list[dict[str, float]]
    best_epoch: int | None
    best_val_acc: float | None
    restored_best: bool
    stop_reason: str | None
    precision: str
    steps: int
    earlier_s: float


@dataclass(frozen=True)
class _Best:
    """The best validation epoch so far and the weights it had (None: no validation yet)."""

    epoch: int | None = None
    val_acc: float | None = None
    state: dict[str, torch.Tensor] | None = None


def fit(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    set_train_mode: Callable[[nn.Module], None],
    forward: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    device: torch.device,
    early_stop: EarlyStop | None,
    progress: bool,
    desc: str,
    recipe: TrainRecipe | None = None,
    seed: int = 0,
    on_step: Callable[[int, int], None] | None = None,
    method: str = "",
    noise_std: float = 0.0,
    run_seed: int = 0,
    checkpointing: Checkpointing | None = None,
    anneal_from: TrainState | None = None,
) -> FitOutcome:
    """Run up to ``epochs`` epochs (see :class:`FitOutcome`).

    ``set_train_mode`` decides which modules are in train mode (noise on, BN frozen, ...), ``forward`` runs
    one training forward. The best-val state (by val accuracy, first epoch on ties) is restored at the end.
    With a ``recipe``: the LR of every step comes from ``recipe.lr_at`` (``scheduler`` should be None), the
    loss is label-smoothed, batches are augmented on their device (seeded from ``seed``), gradients clipped,
    the model run channels-last and the forward and backward in the precision the recipe says (bf16: under
    ``torch.autocast``; parameters, optimizer state and BN statistics stay fp32, the loss is taken in fp32).
    ``on_step(step, total_steps)`` runs before each optimizer step (e.g. the noise warm-up).

    ``checkpointing``: snapshots for resumption and stops (``training.checkpointing``); a ``resume.pt`` of the
    same run (``method``, ``noise_std``, the trainer's ``run_seed``, budget, recipe, precision) there is
    continued bit-exactly.
    ``anneal_from``: a stop of such a run; it continues for the stop's anneal steps with the LR of
    ``recipe.anneal_lr_at`` and then ends, keeping the last state (not the best-val one).
    """
    from tqdm.auto import tqdm

    if early_stop is not None and val_loader is None:
        raise ConfigError("early_stop needs a val_loader to measure val accuracy; pass val_loader=... or "
                          "early_stop=None")
    r = recipe
    loss_fn = nn.CrossEntropyLoss(label_smoothing=r.label_smoothing if r else 0.0)
    total_steps = 0
    if r is not None or on_step is not None or checkpointing is not None or anneal_from is not None:
        try:
            total_steps = epochs * len(train_loader)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ConfigError("a training recipe (or checkpointing) counts optimizer steps and needs a training "
                              "loader with len(); pass a DataLoader (tsb_aihw.data.make_loader)") from exc
        if total_steps == 0:
            raise ConfigError("the training loader yields no batches; check the dataset split and batch size")
    precision = resolve_precision(r.precision if r is not None else "fp32", device)
    run = RunInfo(method=method, noise_std=float(noise_std), seed=run_seed, epochs=epochs, total_steps=total_steps,
                  precision=precision, recipe=r)
    state, end_step, anneal = _starting_state(run, checkpointing, anneal_from)
    stop_at = {p.stop_step: p for p in plan_stops(r, total_steps, checkpointing.stops)} if checkpointing else {}
    augment = None
    if r is not None and r.augment == "crop_flip":
        from tsb_aihw.data.batch_augment import BatchCropFlip

        augment = BatchCropFlip(r.crop_padding, r.flip, seed)
    loader_gen = getattr(train_loader, "generator", None)
    loader_gen = loader_gen if isinstance(loader_gen, torch.Generator) else None
    clip_params = [p for g in optimizer.param_groups for p in g["params"]]
    memory_format = torch.channels_last if r is not None and r.channels_last else None
    if memory_format is not None:
        model.to(memory_format=memory_format)  # type: ignore[call-overload, unused-ignore]  # torch 2.10 stubs lack it

    def lr_of(step: int) -> float:
        assert r is not None
        if anneal is not None and step >= anneal.stop_step:
            return r.anneal_lr_at(step - anneal.stop_step, anneal.anneal_steps)
        return r.lr_at(step, total_steps)

    step = 0
    history: list[dict[str, float]] = []
    val_accs: list[float] = []
    best = _Best()
    reason = None
    first_epoch, earlier_s = 1, 0.0
    if state is not None:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
        if scheduler is not None and state.scheduler is not None:
            scheduler.load_state_dict(state.scheduler)
        step, first_epoch, earlier_s, reason = state.step, state.epoch, state.elapsed_s, state.stop_reason
        history = [dict(h) for h in state.history]
        val_accs = [h["val_acc"] for h in history if "val_acc" in h]
        best = _Best(state.best_epoch, state.best_val_acc, state.best_state)
        if state.batch == 0:
            _restore_rngs(state, augment, device)
            if loader_gen is not None and state.loader_rng is not None:
                loader_gen.set_state(state.loader_rng)
    started = time.perf_counter()

    def snapshot(epoch: int, batch: int, sums: tuple[float, float, float], epoch_start: EpochStart | None,
                 epoch_lr: float, plan: StopPlan | None = None) -> TrainState:
        return TrainState(
            run=run, step=step, epoch=epoch, batch=batch, elapsed_s=earlier_s + time.perf_counter() - started,
            model=_snapshot(model), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict() if scheduler is not None else None, cpu_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            augment_rng=_augment_generator(augment, device).get_state() if augment is not None else None,
            loader_rng=loader_gen.get_state() if loader_gen is not None and batch == 0 else None,
            epoch_start=epoch_start if batch > 0 else None, epoch_lr=epoch_lr, sums=sums, history=history,
            best_epoch=best.epoch, best_val_acc=best.val_acc, best_state=best.state, stop_reason=reason,
            plan=plan)

    amp = precision == "bf16"
    bar = tqdm(range(first_epoch, epochs + 1), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        if reason is not None or step >= end_step:
            break
        t0 = time.perf_counter()
        set_train_mode(model)
        if state is not None and state.epoch == epoch and state.batch > 0:  # resume inside this epoch
            assert state.epoch_start is not None
            epoch_start = state.epoch_start
            it = _replay(train_loader, loader_gen, epoch_start, state.batch)
            _restore_rngs(state, augment, device)
            (loss_sum, correct, seen), lr, batch = state.sums, state.epoch_lr, state.batch
        else:
            epoch_start = EpochStart(torch.get_rng_state(), loader_gen.get_state() if loader_gen else None)
            it = iter(train_loader)
            loss_sum = correct = seen = 0.0
            batch = 0
            lr = lr_of(min(step, total_steps - 1)) if r is not None else optimizer.param_groups[0]["lr"]
        for x, y in it:
            if step >= end_step:
                break
            x, y = x.to(device), y.to(device)
            if r is not None:
                if step >= total_steps:
                    raise ConfigError("the training loader yielded more batches than its len() said")
                for group in optimizer.param_groups:
                    group["lr"] = lr_of(step)
            if on_step is not None:
                on_step(step, total_steps)
            if augment is not None:
                x, y = augment(x, y)
            if memory_format is not None:
                x = x.contiguous(memory_format=memory_format)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = forward(model, x)
            loss = loss_fn(logits.float(), y)
            if not bool(torch.isfinite(loss)):
                raise_non_finite(model, x, epoch, seen)
            loss.backward()
            if r is not None and r.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(clip_params, r.grad_clip)
            optimizer.step()
            step += 1
            batch += 1
            loss_sum += float(loss.detach()) * y.numel()
            correct += float((logits.detach().argmax(1) == y).sum())
            seen += y.numel()
            if checkpointing is not None:
                if step in stop_at:
                    plan = stop_at[step]
                    save_state(snapshot(epoch, batch, (loss_sum, correct, seen), epoch_start, lr, plan),
                               checkpointing.stop_path(plan.budget))
                if checkpointing.every_steps is not None and step % checkpointing.every_steps == 0:
                    save_state(snapshot(epoch, batch, (loss_sum, correct, seen), epoch_start, lr),
                               checkpointing.resume_path)
        if scheduler is not None:
            scheduler.step()
        if seen == 0:
            raise ConfigError("the training loader yielded no samples; check the dataset split and batch "
                              "size")
        record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_acc": correct / seen, "lr": lr}
        if val_loader is not None:
            acc = evaluate_accuracy(model, val_loader, device)
            record["val_acc"] = acc
            val_accs.append(acc)
            if best.val_acc is None or acc > best.val_acc:
                best = _Best(epoch, acc, _snapshot(model))
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k in ("train_loss", "val_acc")})
        if early_stop is not None:
            reason = early_stop.reason(val_accs)
        if checkpointing is not None and checkpointing.every_steps is None:
            save_state(snapshot(epoch + 1, 0, (0.0, 0.0, 0.0), None, lr), checkpointing.resume_path)
    restore = best.state is not None and anneal is None
    if best.state is not None and restore:
        model.load_state_dict(best.state)
    if memory_format is not None:
        model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload, unused-ignore]  # as above
    return FitOutcome(history=history, best_epoch=best.epoch, best_val_acc=best.val_acc,
                      restored_best=restore, stop_reason=reason, precision=precision, steps=step,
                      earlier_s=earlier_s)


def _starting_state(run: RunInfo, checkpointing: Checkpointing | None, anneal_from: TrainState | None
                    ) -> tuple[TrainState | None, float, StopPlan | None]:
    """(state to start from or None, the step to end after, the stop plan of an anneal or None)."""
    if anneal_from is not None:
        if anneal_from.plan is None:
            raise ConfigError("an anneal starts from a stop (stop-<f>.pt), not from a resume snapshot")
        check_same_run(anneal_from, run, Path(f"stop-{anneal_from.plan.budget:g}.pt"))
        return anneal_from, anneal_from.plan.steps, anneal_from.plan
    if checkpointing is not None and checkpointing.resume_path.exists():
        state = load_state(checkpointing.resume_path)
        check_same_run(state, run, checkpointing.resume_path)
        return state, run.total_steps, None
    return None, run.total_steps if run.total_steps else math.inf, None


def _replay(loader: Iterable, loader_gen: torch.Generator | None, start: EpochStart, batches: int) -> Iterator:
    """An iterator over ``loader`` positioned after its first ``batches`` batches, drawn exactly as in the epoch
    that began at ``start`` (the batches are loaded and dropped; no model runs)."""
    torch.set_rng_state(start.cpu_rng)
    if loader_gen is not None and start.loader_rng is not None:
        loader_gen.set_state(start.loader_rng)
    it = iter(loader)
    for _ in range(batches):
        next(it)
    return it


def _restore_rngs(state: TrainState, augment: Any, device: torch.device) -> None:
    torch.set_rng_state(state.cpu_rng)
    if state.cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.cuda_rng, device)
    if augment is not None and state.augment_rng is not None:
        _augment_generator(augment, device).set_state(state.augment_rng)


def _augment_generator(augment: Any, device: torch.device) -> torch.Generator:
    """The batch augmentation's generator on ``device`` (created from its seed if it has not drawn yet).

    BatchCropFlip has no public accessor for its stream; a snapshot must carry it, or a resumed run would crop
    differently from an uninterrupted one."""
    return augment._generator(device)  # noqa: SLF001


def raise_non_finite(model: nn.Module, x: torch.Tensor, epoch: int, seen: float) -> None:
    """A NaN/inf loss: say whether the inputs, the weights or the optimisation (learning rate) caused it."""
    where = f"epoch {epoch}, after {int(seen)} samples"
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"training input batch holds NaN/inf values ({where}); clean the dataset (every image "
                        "must be finite) before training")
    bad = [n.replace(".parametrizations.weight.original", ".weight") for n, p in model.named_parameters()
           if not bool(torch.isfinite(p).all())]
    if bad:
        raise ConfigError(f"model weights are NaN/inf ({where}: {', '.join(bad[:6])}); the model was loaded "
                          "with non-finite weights or training diverged: lower the learning rate or reload "
                          "a finite checkpoint")
    raise ConfigError(f"training diverged: the loss is NaN/inf ({where}); lower the learning rate (lr) or "
                      "the weight-noise std")


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers (BN running stats move during noise-injection training)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
