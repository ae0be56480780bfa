"""tsb-aihw: Tiny Shared Block deployment of DNNs on simulated analog NVM chips, built on IBM AIHWKit.

Public API (imported lazily, so ``tsb-aihw --help`` stays fast and importing one concern does not pull
in every other):

- data: ``get_dataset``, ``make_loader``, ``list_datasets``
- devices: ``load_preset``, ``list_presets``, ``programming_cost``
- models: ``get_model``, ``list_models``, ``TinySharedBlock``, ``insert_tsb``
- analog: ``to_analog``, ``weight_report``, ``read_back``, ``load_read_back``, ``weight_errors``
- training / baselines: ``train_noise_injection``, ``train_block``, ``selection_masks``, ``recalibrate_bn``
- evaluation: ``evaluate_accuracy``, ``monte_carlo``, ``evaluate_drift``, ``parse_time``
- analog chips: ``Chip`` (one seeded chip: program, drift, read back, write the block, evaluate)
- pipeline: ``run_study``, ``run_studies``, ``run_drift_study``, ``run_refresh_study``
- sweeps: ``run_sweep``, ``load_sweep``
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
    "get_tsb": "tsb_aihw.models",
    "bind_sites": "tsb_aihw.models",
    "load_torchvision": "tsb_aihw.models",
    "read_back": "tsb_aihw.analog",
    "load_read_back": "tsb_aihw.analog",
    "weight_errors": "tsb_aihw.analog",
    "train_noise_injection": "tsb_aihw.training",
    "train_block": "tsb_aihw.training",
    "selection_masks": "tsb_aihw.baselines",
    "recalibrate_bn": "tsb_aihw.baselines",
    "evaluate_drift": "tsb_aihw.evaluation",
    "evaluate_accuracy": "tsb_aihw.evaluation",
    "monte_carlo": "tsb_aihw.evaluation",
    "parse_time": "tsb_aihw.evaluation",
    "Chip": "tsb_aihw.analog.chip",
    "run_study": "tsb_aihw.pipeline.study",
    "run_studies": "tsb_aihw.pipeline.studies",
    "run_drift_study": "tsb_aihw.pipeline.drift_study",
    "run_refresh_study": "tsb_aihw.pipeline.refresh",
    "run_sweep": "tsb_aihw.sweeps",
    "load_sweep": "tsb_aihw.sweeps",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tsb_aihw' has no attribute {name!r}")
