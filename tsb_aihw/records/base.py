"""What every results file shares: the run header, the dataset line, and reading a record back with checks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.utils.io import JsonObject, read_json
from tsb_aihw.utils.provenance import Provenance
from tsb_aihw.utils.schema import build, spec, to_tree
from tsb_aihw.utils.text import short_repr

if TYPE_CHECKING:  # only its type: importing the preset module would load AIHWKit with every record
    from tsb_aihw.devices.presets import DevicePreset

R = TypeVar("R", bound="Record")

#: appended to every read-back error: what happened and what to do
DAMAGED = ("the file was edited or damaged: delete it (its results are recomputed on the next run) or restore it "
           "from a backup")


class Record:
    """A typed result: written with :meth:`to_dict`, read back with :func:`load_record`."""

    def to_dict(self) -> JsonObject:
        tree = to_tree(self)
        assert isinstance(tree, dict)
        return tree


def load_record(cls: type[R], data: Any, where: str) -> R:
    """``data`` (a parsed results file or cell) as ``cls``: types, ranges and keys checked; one line else."""
    try:
        return build(cls, data, src=where)
    except ConfigError as exc:
        raise TSBError(f"{exc}; {DAMAGED}") from None


def read_record(cls: type[R], path: str | os.PathLike) -> R:
    """A results file as ``cls`` (a missing file raises FileNotFoundError, as :func:`read_json` does)."""
    return load_record(cls, read_json(path, expect=dict), str(path))


def accuracy_field(**kw: Any) -> Any:
    """An accuracy (or list of them, nested): a fraction in [0, 1]."""
    return spec(lo=0.0, hi=1.0, **kw)


@dataclass(frozen=True)
class PresetRecord:
    """The device preset a result ran on, as results hold it: the preset's own tree (``DevicePreset.to_dict()``:
    its fields and derived values), its name and, in studies, its content identity. Kept as that tree, which only
    the preset schema owns; ``name`` and ``identity`` are what reports and folders read."""

    tree: JsonObject

    @classmethod
    def of(cls, preset: DevicePreset, *, identity: bool = True) -> PresetRecord:
        extra = {"name": preset.name, "identity": preset.identity} if identity else {"name": preset.name}
        return cls(preset.to_dict() | extra)

    @property
    def name(self) -> str:
        name = self.tree["name"]
        assert isinstance(name, str)  # checked by from_tree
        return name

    @property
    def identity(self) -> str | None:
        return self.tree.get("identity")

    def to_dict(self) -> JsonObject:
        return self.tree

    @classmethod
    def from_tree(cls, data: Any, where: str) -> PresetRecord:
        """A written preset read back; one line if it is not a mapping with a name (and a text identity)."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) \
                or not isinstance(data.get("identity", ""), str):
            raise ConfigError(f"{where} = {short_repr(data, 80)} is not a device preset (a mapping with its name)")
        return cls(data)


@dataclass(frozen=True, kw_only=True)
class DatasetRecord(Record):
    """Which data a result was measured on."""

    name: str
    split_note: str
    eval_size: int = spec(lo=1)


@dataclass(frozen=True, kw_only=True)
class RunHeader(Record):
    """The fields every results file carries: its config and seed, the versions and machine it ran on, the
    evaluation times, and the one reference its gaps are measured against."""

    config: JsonObject  # the config as its writer's to_dict() gave it (study, sweep, drift, refresh configs)
    seed: int
    provenance: Provenance
    times: list[float] = spec(lo=0.0)
    time_labels: list[str]
    reference_accuracy: float = accuracy_field()
    reference_definition: str
