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
