"""Sweep YAML: a study config (``tsb-aihw run --config`` schema) plus an optional ``sweep:`` section.

``sweep:`` maps a kind (``verified-fraction``, ``sigma``, ``adc-bits``, ``param``, ``presets``) to its default
options; command-line flags override them::

    sweep:
      verified-fraction: {values: [0, 0.001, 0.01, 0.1, 1], points: [tsb]}
      sigma: {values: [0.1, 0.2, 0.35], methods: [full_noise_injection, tsb]}
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import StudyConfig, study_config_from_dict
from tsb_aihw.sweeps.axes import canonical_kind

#: keys a kind's entry in the ``sweep:`` section may hold
OPTION_KEYS = ("values", "key", "io", "rules", "points", "add_tsb_fraction", "methods", "times", "chips")


def load_sweep_config(path: str | Path) -> tuple[StudyConfig, dict[str, dict[str, Any]]]:
    """(base study config, {kind: options}) from a YAML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found; pass --config with a YAML file (see configs/sweeps/)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: malformed YAML ({exc}); fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(data).__name__}")
    section = data.pop("sweep", None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{p}: sweep: must map a kind (e.g. verified-fraction) to its options")
    options: dict[str, dict[str, Any]] = {}
    for kind, opts in section.items():
        try:
            k = canonical_kind(kind)
        except ConfigError as exc:
            raise ConfigError(f"{p}: sweep.{kind}: {exc}") from None
        if not isinstance(opts, dict):
            raise ConfigError(f"{p}: sweep.{kind}: expected a mapping of options, got {opts!r}")
        for key in opts:
            if key not in OPTION_KEYS:
                close = difflib.get_close_matches(str(key), OPTION_KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{p}: sweep.{kind}: unknown key {key!r}{hint}; valid: {', '.join(OPTION_KEYS)}")
        options[k] = dict(opts)
    return study_config_from_dict(data, str(p)), options
