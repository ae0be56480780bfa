"""Load a torchvision CNN from a local state-dict file (no downloads), ready for ``insert_tsb``/``to_analog``."""
from __future__ import annotations

import difflib
import os
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError

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
    if not os.path.isfile(path):
        raise ConfigError(f"state-dict file {path} does not exist; give the path of a local file saved with "
                          "torch.save(model.state_dict(), path) (nothing is downloaded)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt file, pickle of arbitrary objects, ...
        raise ConfigError(f"cannot read {path} as a torch state dict ({type(exc).__name__}: {exc}); "
                          "save it with torch.save(model.state_dict(), path)") from exc
    sd = _unwrap(raw, path)

    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    head = _classifier_name(model)
    if num_classes is None and head is not None and f"{head}.weight" in sd:
        num_classes = int(sd[f"{head}.weight"].shape[0])
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **model_kwargs)

    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing in file: {_listing(missing)}")
        if unexpected:
            parts.append(f"not in {name}: {_listing(unexpected)}")
        if shapes:
            parts.append(f"shape mismatch: {_listing(shapes)}")
        raise ConfigError(f"{path} does not match torchvision {name} (num_classes={num_classes}): "
                          + "; ".join(parts) + ". Check the model name, num_classes and the file.")
    model.load_state_dict(sd, strict=True)
    return model.eval()
