"""Backbone registry in the torchvision/timm style: ``@register_model`` + ``get_model(name, **cfg)``."""
from __future__ import annotations

import fnmatch
from typing import Callable, TypeVar

from torch import nn

from tsb_aihw.errors import ConfigError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Register a model builder under its function name (or ``name``); a duplicate name is an error."""

    def deco(builder: F) -> F:
        key = (name or builder.__name__).lower()
        if key in _REGISTRY:
            raise ConfigError(
                f"model {key!r} is already registered (by {_REGISTRY[key].__module__}); "
                "pick another name with @register_model(name=...)"
            )
        _REGISTRY[key] = builder
        return builder

    return deco(fn) if fn is not None else deco


def list_models(filter: str = "") -> list[str]:  # noqa: A002 - torchvision/timm spelling
    """Sorted registered names; ``filter`` is a glob (``"res*"``) or a substring."""
    names = sorted(_REGISTRY)
    if not filter:
        return names
    pattern = filter if any(c in filter for c in "*?[") else f"*{filter}*"
    return [n for n in names if fnmatch.fnmatch(n, pattern.lower())]


def get_model(
    name: str, num_classes: int = 10, in_channels: int | None = None, width: float = 1.0, **cfg
) -> nn.Module:
    """Build a registered backbone; ``in_channels=None`` uses the model's dataset default."""
    key = name.lower()
    if key not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of {list_models()}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive int, got {num_classes!r}")
    if in_channels is not None and (not isinstance(in_channels, int) or in_channels < 1):
        raise ConfigError(f"in_channels must be a positive int or None, got {in_channels!r}")
    if not isinstance(width, (int, float)) or not width > 0:
        raise ConfigError(f"width must be a positive number (1.0 = the reference widths), got {width!r}")
    kwargs = dict(cfg, num_classes=num_classes, width=float(width))
    if in_channels is not None:
        kwargs["in_channels"] = in_channels
    try:
        return _REGISTRY[key](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad option for model {name!r}: {exc}") from exc
