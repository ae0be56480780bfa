"""Resolve ``--device`` with a clear error when the requested accelerator is absent."""
from __future__ import annotations

import torch

from tsb_aihw.errors import TSBError


def resolve_device(name: str | torch.device | None = "cpu") -> torch.device:
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise TSBError(f"unknown device {name!r}; use 'cpu', 'cuda', 'cuda:N' or 'auto'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TSBError(f"--device {name} requested but no CUDA GPU is available; use --device cpu (or auto)")
    return dev
