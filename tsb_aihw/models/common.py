"""Helpers the backbone families share: width scaling and the reference (NF_Training) initialisation."""
from __future__ import annotations

from torch import Tensor, nn

from tsb_aihw.errors import ConfigError


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """``channels * width`` rounded to a multiple of ``divisor`` (so a power-of-two TSB k divides it).

    ``width == 1`` returns ``channels`` untouched (the reference architecture stays faithful).
    Rounding never drops more than 10% below the target (timm's ``make_divisible`` rule).
    """
    if width == 1.0:
        return channels
    if divisor < 1:
        raise ConfigError(f"round_to must be >= 1, got {divisor}")
    target = channels * width
    out = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if out < 0.9 * target:
        out += divisor
    return out


def check_input_size(x: Tensor, input_size: int, name: str) -> None:
    """Fail clearly when a model whose FC size depends on the input gets another image size."""
    if x.dim() == 4 and (x.shape[-2] != input_size or x.shape[-1] != input_size):
        raise ConfigError(
            f"{name} was built for {input_size}x{input_size} inputs (its FC size depends on it), got "
            f"{x.shape[-2]}x{x.shape[-1]}; build it with get_model({name!r}, input_size={x.shape[-1]}, ...)"
        )


def init_kaiming_fan_out(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) for conv and linear weights, zero biases, BN (1, 0): as in NF_Training."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


FC_INITS = ("fan_out", "fan_in")


def init_linear_fan_in(model: nn.Module) -> None:
    """Re-initialise the Linear layers so activations keep their scale: Kaiming-normal fan-in (ReLU gain) on
    hidden ones, std ``1/sqrt(fan_in)`` on the last one, zero biases.

    Why: the NF_Training fan-out init on a Linear that shrinks its width (VGG-8 fc2: 1024 -> 10) multiplies
    the activation variance by ``2 * fan_in / fan_out``; at width 0.25 VGG-8 starts with train-mode logits
    of std ~30 (loss ~45), and SGD (or any noise injection at sigma >= 0.2) never leaves chance from there
    (docs/training.md). With this init the first logits have std ~1."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for i, m in enumerate(linears):
        if i < len(linears) - 1:
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        else:
            nn.init.normal_(m.weight, std=m.in_features ** -0.5)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_reference(model: nn.Module, fc_init: str) -> None:
    """NF_Training's init, with the Linear layers re-initialised fan-in when ``fc_init == "fan_in"``."""
    if fc_init not in FC_INITS:
        raise ConfigError(f"fc_init {fc_init!r} is unknown; choose one of {', '.join(FC_INITS)}")
    init_kaiming_fan_out(model)
    if fc_init == "fan_in":
        init_linear_fan_in(model)
