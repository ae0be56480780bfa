"""Which modules hold crossbar weights, and how many: the denominator of every verified fraction."""
from __future__ import annotations

from typing import cast

from torch import nn

TSB_NAME = "tsb"

_DIGITAL = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def is_analog_layer(module: nn.Module) -> bool:
    """AIHWKit analog layer (``AnalogConv2d``, ``AnalogLinear``, ...), by duck typing to keep aihwkit optional."""
    return hasattr(module, "analog_module") and hasattr(module, "in_features") and hasattr(module, "out_features")


def layer_weight_count(module: nn.Module) -> int:
    """Weights of one conv/linear layer (biases excluded: they stay digital)."""
    if is_analog_layer(module):
        return int(cast(int, module.in_features)) * int(cast(int, module.out_features))  # ints on AIHWKit layers
    return int(module.weight.numel())


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every conv/linear layer, digital or analog, in registration order."""
    out = []
    for name, m in model.named_modules():
        if is_analog_layer(m) or (isinstance(m, _DIGITAL) and getattr(m, "weight", None) is not None):
            out.append((name, m))
    return out


def is_tsb_name(name: str) -> bool:
    return name == TSB_NAME or name.startswith(TSB_NAME + ".")


def backbone_weight_count(model: nn.Module) -> int:
    """Conv + linear weights outside the shared block (digital or analog, grouped convs included)."""
    return sum(layer_weight_count(m) for n, m in weight_layers(model) if not is_tsb_name(n))
