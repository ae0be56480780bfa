"""Load a torchvision CNN from a local state-dict file (no downloads), ready for ``insert_tsb``/``to_analog``."""
from __future__ import annotations

import difflib
import os
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.torchfile import read_state_dict

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


def _unwrap(obj: Any, path: str) -> dict[str, Tensor]:
    """A plain state dict from a raw one, a checkpoint dict holding one, or a pickled module."""
    if isinstance(obj, nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        sd = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
        if sd:
            if all(k.startswith("module.") for k in sd):  # saved from DataParallel/DDP
                sd = {k[len("module."):]: v for k, v in sd.items()}
            return sd
    raise ConfigError(f"{path} holds no state dict (got {type(obj).__name__}); save one with "
                      "torch.save(model.state_dict(), path)")


def _classifier_name(model: nn.Module) -> str | None:
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def state_dict_mismatch(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """Which keys/shapes of ``state`` differ from ``model.state_dict()`` (None when they all match)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(getattr(state[k], 'shape', ()))} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(getattr(state[k], "shape", ())) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"missing in file: {_listing(missing)}")
    if unexpected:
        parts.append(f"not in the model: {_listing(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch: {_listing(shapes)}")
    return "; ".join(parts) or None


def load_state_checked(model: nn.Module, state: Mapping[str, Tensor], source: str,
                       fix: str = "check the model name, width and dataset (classes, channels)") -> nn.Module:
    """``model.load_state_dict(state)`` that never loads a partial model: ConfigError listing every key or
    shape that differs, or the tensors holding NaN/inf, instead of torch's multi-line RuntimeError."""
    diff = state_dict_mismatch(model, state)
    if diff:
        raise ConfigError(f"{source} does not match the {type(model).__name__} architecture: {diff}; {fix}")
    bad = [k for k, v in state.items()
           if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ConfigError(f"{source} holds NaN/inf values in {_listing(bad)}; the training that wrote it "
                          "diverged: retrain (e.g. with a lower learning rate) or use another checkpoint")
    model.load_state_dict(dict(state), strict=True)
    return model


def load_torchvision(name: str, state_dict_path: str | os.PathLike, num_classes: int | None = None,
                     **model_kwargs: Any) -> nn.Module:
    """Build ``torchvision.models.<name>(weights=None)`` and load a local state dict into it (eval mode).

    ``num_classes=None`` takes the class count from the checkpoint's last linear layer. Raises
    ``ConfigError`` for an unknown model name, a missing/unreadable file, or keys/shapes that do not match
    (all listed), never loading a partial model.
    """
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        raise ConfigError(f"unknown torchvision classification model {name!r}; close names: {close}")
    path = os.fspath(state_dict_path)
    raw = read_state_dict(path)
    sd = _unwrap(raw, path)

    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    head = _classifier_name(model)
    if num_classes is None and head is not None and f"{head}.weight" in sd:
        num_classes = int(sd[f"{head}.weight"].shape[0])
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **model_kwargs)

    load_state_checked(model, sd, f"{path} (for torchvision {name}, num_classes={num_classes})",
                       fix="check the model name, num_classes and the file")
    return model.eval()
