"""A sweep config: a study config plus a ``sweep:`` section of per-kind options (command-line flags override)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import CHIPS_WHY, MAX_CHIPS, StudyConfig, config_from, read_config_file
from tsb_aihw.pipeline.methods import ALL_METHODS
from tsb_aihw.sweeps.axes import canonical_kind
from tsb_aihw.utils.schema import build, spec


@dataclass
class SweepOptions:
    """One kind's entry in a sweep config's ``sweep:`` section (command-line flags override it)."""

    values: Union[list[Any], None] = None
    key: Union[str, None] = None
    io: Union[list[str], None] = None
    rules: Union[list[str], None] = None
    points: Union[list[str], None] = None
    add_tsb_fraction: bool = True
    methods: Union[list[str], None] = spec(None, choices=ALL_METHODS, what="method")
    times: Union[list[Union[float, str]], None] = None
    chips: Union[int, None] = spec(None, lo=2, hi=MAX_CHIPS, why=CHIPS_WHY)


def load_sweep_config(path: str | Path, overrides: Mapping[str, Any] | None = None, what: str = "sweep config"
                      ) -> tuple[StudyConfig, dict[str, SweepOptions]]:
    """(base study config, {kind: options}) from a sweep YAML: a study config plus a ``sweep:`` section."""
    raw = read_config_file(path, what)
    section_raw = raw.pop("sweep", None) or {}
    if not isinstance(section_raw, dict):
        raise ConfigError(f"{path}: sweep: must map a kind (e.g. verified-fraction) to its options")
    options: dict[str, SweepOptions] = {}
    for kind, opts in section_raw.items():
        try:
            options[canonical_kind(kind)] = build(SweepOptions, opts, "", f"sweep.{kind}.")
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return config_from(StudyConfig, raw, str(path), overrides), options
