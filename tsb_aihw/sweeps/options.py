"""A sweep config: a study config plus a ``sweep:`` section, one entry of options per kind.

The command line reaches the same tree through dotted overrides, as every command does (:func:`config_from`):
``tsb-aihw sweep sigma --values 0.1,0.2`` is ``sweep.sigma.values``, so a flag beats the entry and the entry beats
the study's own key. Each key of an entry has one owner: the axis keys are :class:`SweepAxis`'s fields, the run keys
(``methods``, ``times``, ``chips``) :class:`StudyConfig`'s; :data:`SweepOptions` is derived from them, so a type,
range or choice is declared once, by its owner.
"""
from __future__ import annotations

import typing
from dataclasses import field, fields, make_dataclass
from pathlib import Path
from typing import Any, Union, cast

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import StudyConfig, config_from, read_config_file
from tsb_aihw.sweeps.axes import SweepAxis, canonical_kind
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.schema import build, with_overrides
from tsb_aihw.utils.text import short_repr

#: an entry's axis keys: :class:`SweepAxis`'s fields (its kind is the entry's name)
AXIS_KEYS = tuple(f.name for f in fields(SweepAxis) if f.name != "kind")
#: an entry's run keys: the study keys that kind runs with (over the study's own)
RUN_KEYS = ("methods", "times", "chips")


def _borrowed(owner: type, names: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
    """``owner``'s fields ``names``, each optional (None: not set in the entry) and checked as its owner checks it."""
    hints = typing.get_type_hints(owner)
    return [(f.name, Union[hints[f.name], None], field(default=None, metadata=f.metadata))
            for f in fields(owner) if f.name in names]


class SweepEntry:
    """What a kind's entry gives the sweep; its fields are :data:`SweepOptions`'s, derived from their owners."""

    def axis_options(self) -> JsonObject:
        """The axis keys the entry sets (the others keep :class:`SweepAxis`'s defaults)."""
        return {k: getattr(self, k) for k in AXIS_KEYS if getattr(self, k) is not None}

    def run_overrides(self) -> JsonObject:
        """The run keys as overrides of the study's (None: the study's own)."""
        return {k: getattr(self, k) for k in RUN_KEYS}


SweepOptions = cast("type[SweepEntry]", make_dataclass(
    "SweepOptions", _borrowed(SweepAxis, AXIS_KEYS) + _borrowed(StudyConfig, RUN_KEYS), bases=(SweepEntry,)))
SweepOptions.__module__ = __name__  # make_dataclass's own `module=` needs Python 3.12
SweepOptions.__doc__ = ("One kind's entry in a sweep config's ``sweep:`` section: SweepAxis's fields (but kind) and "
                        "the run keys; None: the axis's default or the study's value.")


def read_sweep_config(path: str | Path, overrides: JsonObject | None = None, what: str = "sweep config"
                      ) -> tuple[JsonObject, dict[str, SweepEntry]]:
    """(the study's raw mapping, {kind: SweepOptions}) of a sweep YAML with dotted ``overrides`` applied; entries
    are keyed by the canonical kind (``sweep.verified_fraction.values``) whichever spelling the YAML uses."""
    raw = read_config_file(path, what)
    section = raw.pop("sweep", None) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: sweep: must map a kind (e.g. verified-fraction) to its options")
    entries: JsonObject = {}
    for name, entry in section.items():
        try:
            kind = canonical_kind(name)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if kind in entries:
            raise ConfigError(f"{path}: sweep: has two entries for the {kind} kind ({name!r} is one); keep one")
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(f"{path}: sweep.{name} must be a mapping of options (values: [...]), got "
                              f"{type(entry).__name__} {short_repr(entry)}")
        entries[kind] = entry or {}
    tree = with_overrides(raw | {"sweep": entries}, overrides or {})
    entries = tree.pop("sweep")
    return tree, {kind: build(SweepOptions, entry, str(path), f"sweep.{kind}.") for kind, entry in entries.items()}


def load_sweep_config(path: str | Path, overrides: JsonObject | None = None, what: str = "sweep config"
                      ) -> tuple[StudyConfig, dict[str, SweepEntry]]:
    """(base study config, {kind: SweepOptions}): the study `tsb-aihw run` deploys, every entry checked."""
    raw, entries = read_sweep_config(path, overrides, what)
    return config_from(StudyConfig, raw, str(path)), entries


def sweep_from_config(path: str | Path, kind: str, overrides: JsonObject | None = None
               ) -> tuple[StudyConfig, SweepAxis]:
    """The study and the axis `tsb-aihw sweep KIND` runs: the base study with the entry's run keys, and its axis."""
    kind = canonical_kind(kind)
    raw, entries = read_sweep_config(path, overrides)
    entry = entries.get(kind) or SweepOptions()
    cfg = config_from(StudyConfig, with_overrides(raw, entry.run_overrides()), str(path))
    axis = entry.axis_options()
    if "values" not in axis:
        spelled = kind.replace("_", "-")
        raise ConfigError(f"sweep {spelled}: no values; pass --values (or --presets), or put them under "
                          f"sweep: {spelled}: values: in {path}")
    return cfg, SweepAxis(kind, **axis)
