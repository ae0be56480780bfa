"""tsb-aihw: Tiny Shared Block deployment of DNNs on simulated analog NVM chips, built on IBM AIHWKit.

Public API (imported lazily, so ``tsb-aihw --help`` stays fast and importing one concern does not pull
in every other):

- data: ``get_dataset``, ``make_loader``, ``list_datasets``
- devices: ``load_preset``, ``list_presets``, ``programming_cost``
- models: ``get_model``, ``list_models``, ``TinySharedBlock``, ``insert_tsb``
- analog: ``to_analog``, ``weight_report``
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "get_dataset": "tsb_aihw.data",
    "make_loader": "tsb_aihw.data",
    "list_datasets": "tsb_aihw.data",
    "load_preset": "tsb_aihw.devices",
    "list_presets": "tsb_aihw.devices",
    "programming_cost": "tsb_aihw.devices",
    "get_model": "tsb_aihw.models",
    "list_models": "tsb_aihw.models",
    "TinySharedBlock": "tsb_aihw.models",
    "insert_tsb": "tsb_aihw.models",
    "to_analog": "tsb_aihw.analog",
    "weight_report": "tsb_aihw.analog",
    "evaluate_drift": "tsb_aihw.evaluation",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tsb_aihw' has no attribute {name!r}")
