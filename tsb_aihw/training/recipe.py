"""``TrainRecipe``: one frozen description of how to train (optimizer, per-step LR curve, loss, augmentation,
noise warm-up), so a config can ask for a modern fast recipe without the trainers growing a keyword each.

The trainers keep their old keyword defaults (Adam, per-epoch cosine) when no recipe is given; with a recipe
the LR is set before every optimizer step from :meth:`TrainRecipe.lr_at` (per step, not per epoch).
``precision`` says in which precision the forward and backward run (``tsb_aihw.utils.precision``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.precision import check_precision

OPTIMIZERS = ("adam", "sgd")
RECIPE_SCHEDULES = ("constant", "cosine", "onecycle", "linear-decay", "wsd")
AUGMENTATIONS = ("none", "crop_flip")
#: how the LR of ``wsd`` falls over its decay phase, as a function of the phase's progress t in [0, 1]
DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"recipe {name} must be a finite number, got {value!r}")
    return float(value)


def _in_range(name: str, value: Any, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False
              ) -> None:
    v = _number(name, value)
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi):
        lo_b, hi_b = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ConfigError(f"recipe {name} must be in {lo_b}{lo:g}, {hi:g}{hi_b}, got {value!r}")


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"recipe {name} {value!r} is unknown; choose one of {', '.join(options)}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"recipe {name} must be true or false, got {value!r}")


@dataclass(frozen=True)
class TrainRecipe:
    """How to train: the defaults are a short SGD-nesterov / one-cycle / label-smoothing / crop+flip recipe.

    LR curve over all optimizer steps of the run (``lr_at``): ``warmup_fraction`` of the steps rise from
    ``start_lr_fraction * lr`` to ``lr`` (cosine-shaped for ``onecycle``, linear otherwise), then
    ``constant`` stays, ``cosine`` / ``linear-decay`` / ``onecycle`` fall to ``final_lr_fraction * lr``
    (half-cosine, straight line, half-cosine as in torch's OneCycleLR; momentum is not cycled).
    ``grad_clip``: max global L2 norm of the gradient (None = off). ``augment="crop_flip"``: random crop
    with ``crop_padding`` (reflect padding) and, if ``flip``, horizontal flip, on whole batches on the
    batch's device (:class:`tsb_aihw.data.BatchCropFlip`); the dataset must then be un-augmented.
    ``noise_warmup_fraction``: the injected weight-noise std ramps linearly from 0 to its target over that
    fraction of the steps (0 = full noise from the first step).

    ``wsd`` (warmup-stable-decay, trapezoidal): a linear warm-up over ``warmup_fraction`` of the steps, the peak
    ``lr`` held (stable), then over the last ``decay_fraction`` of the steps a fall to ``final_lr_fraction * lr``
    shaped by ``decay_shape`` (t = progress through the decay, 0 -> 1; LR = lr * (1 - (1 - final) * g(t))):
    ``linear`` g = t, ``cosine`` g = (1 - cos(pi t)) / 2, ``1-sqrt`` g = sqrt(t) (fast fall first; Haegele et al.
    2024). Why: every step before the decay is the same whatever the run's length, so an early backbone can be
    a stop of the full run annealed by its own short decay (:meth:`anneal_lr_at`, ``training.stops``).

    ``precision``: ``fp32``; ``bf16`` (forward and backward under ``torch.autocast``; weights, optimizer state,
    injected noise and BN statistics stay fp32); ``auto`` (bf16 exactly where the machine computes it natively:
    :func:`tsb_aihw.utils.precision.resolve_precision`). A run records the precision it resolved to.
    """

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup_fraction: float = 0.2
    start_lr_fraction: float = 0.04
    final_lr_fraction: float = 0.0
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    channels_last: bool = False
    augment: str = "crop_flip"
    crop_padding: int = 4
    flip: bool = True
    noise_warmup_fraction: float = 0.0
    decay_fraction: float = 0.2
    decay_shape: str = "linear"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _in_range("lr", self.lr, 0.0, math.inf, lo_open=True, hi_open=True)
        _in_range("momentum", self.momentum, 0.0, 1.0, hi_open=True)
        _flag("nesterov", self.nesterov)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("recipe nesterov=true needs optimizer 'sgd' with momentum > 0")
        _in_range("weight_decay", self.weight_decay, 0.0, 1.0)
        _choice("schedule", self.schedule, RECIPE_SCHEDULES)
        _in_range("warmup_fraction", self.warmup_fraction, 0.0, 1.0, hi_open=True)
        if self.schedule == "onecycle" and self.warmup_fraction == 0:
            raise ConfigError("recipe schedule 'onecycle' needs warmup_fraction in (0, 1): where the LR peaks")
        _in_range("start_lr_fraction", self.start_lr_fraction, 0.0, 1.0)
        _in_range("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        _in_range("label_smoothing", self.label_smoothing, 0.0, 1.0, hi_open=True)
        if self.grad_clip is not None:
            _in_range("grad_clip", self.grad_clip, 0.0, math.inf, lo_open=True, hi_open=True)
        _flag("channels_last", self.channels_last)
        _choice("augment", self.augment, AUGMENTATIONS)
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) \
                or not 0 <= self.crop_padding <= 16:
            raise ConfigError(f"recipe crop_padding must be an integer in [0, 16], got {self.crop_padding!r}")
        _flag("flip", self.flip)
        _in_range("noise_warmup_fraction", self.noise_warmup_fraction, 0.0, 1.0)
        _in_range("decay_fraction", self.decay_fraction, 0.0, 1.0, lo_open=True)
        _choice("decay_shape", self.decay_shape, DECAY_SHAPES)
        if self.schedule != "wsd" and (self.decay_fraction != 0.2 or self.decay_shape != "linear"):
            raise ConfigError(f"recipe decay_fraction and decay_shape belong to schedule 'wsd', not "
                              f"{self.schedule!r}; drop them or set schedule: wsd")
        if self.schedule == "wsd" and self.warmup_fraction + self.decay_fraction > 1:
            raise ConfigError(f"recipe schedule 'wsd' needs warmup_fraction + decay_fraction <= 1, got "
                              f"{self.warmup_fraction:g} + {self.decay_fraction:g}")
        try:
            check_precision(self.precision)
        except ConfigError as exc:
            raise ConfigError(f"recipe {exc}") from None

    @classmethod
    def from_dict(cls, values: JsonObject | None) -> "TrainRecipe":
        """A recipe from a config mapping (unset keys keep the defaults); unknown keys are a ConfigError."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown recipe key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> JsonObject:
        return asdict(self)

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``; the last step gets the end LR."""
        p = _progress(step, total_steps)
        start, final = self.start_lr_fraction, self.final_lr_fraction
        w = self.warmup_fraction
        if w > 0 and p < w:
            t = p / w
            rise = (1 - math.cos(math.pi * t)) / 2 if self.schedule == "onecycle" else t
            return self.lr * (start + (1 - start) * rise)
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "wsd":
            d = self.decay_fraction
            return self.lr if p <= 1 - d else self._decayed((p - (1 - d)) / d)
        t = (p - w) / (1 - w)
        fall = t if self.schedule == "linear-decay" else (1 - math.cos(math.pi * t)) / 2
        return self.lr * (1 - (1 - final) * fall)

    def anneal_lr_at(self, step: int, anneal_steps: int) -> float:
        """LR of step ``step`` (0-based) of a ``wsd`` decay compressed into ``anneal_steps`` steps: the anneal that
        turns a stop of a run into an early backbone (the peak LR first, the end LR last)."""
        if self.schedule != "wsd":
            raise ConfigError(f"an anneal from a stop needs recipe schedule 'wsd', not {self.schedule!r}")
        return self._decayed(_progress(step, anneal_steps))

    def _decayed(self, t: float) -> float:
        """The ``wsd`` LR at progress ``t`` in [0, 1] through its decay phase (``decay_shape``)."""
        g = t if self.decay_shape == "linear" else math.sqrt(t) if self.decay_shape == "1-sqrt" \
            else (1 - math.cos(math.pi * t)) / 2
        return self.lr * (1 - (1 - self.final_lr_fraction) * g)

    def stable_steps(self, total_steps: int) -> tuple[int, int]:
        """(first, last) number of steps done after which a ``wsd`` run sits at its peak LR: the stops an early
        backbone can branch off at (after the warm-up, before the decay)."""
        if self.schedule != "wsd":
            raise ConfigError(f"stops need recipe schedule 'wsd', not {self.schedule!r}")
        if total_steps < 2:
            raise ConfigError(f"a wsd run of {total_steps} optimizer step(s) has no stable phase to stop in")
        last = total_steps - 1
        first = math.ceil(self.warmup_fraction * last - 1e-9)
        return first, math.floor((1 - self.decay_fraction) * last + 1e-9)

    def noise_scale(self, step: int, total_steps: int) -> float:
        """Multiplier in [0, 1] of the target weight-noise std at step ``step`` (linear noise warm-up)."""
        if self.noise_warmup_fraction == 0:
            return 1.0
        return min(1.0, _progress(step, total_steps) / self.noise_warmup_fraction)


def _progress(step: int, total_steps: int) -> float:
    """Fraction of training done in [0, 1]: 0 at the first step, 1 at the last."""
    if total_steps < 1 or not 0 <= step < total_steps:
        raise ConfigError(f"step {step} is outside a run of {total_steps} optimizer steps")
    return step / (total_steps - 1) if total_steps > 1 else 1.0
