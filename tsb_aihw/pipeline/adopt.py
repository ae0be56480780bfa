"""Where a study's trained models come from before any is trained (:class:`ModelSources`): this run's checkpoints,
else another run's (``--models-from``: a finished run's checkpoints or an exported ``results/<study>`` folder,
``models.json``), taken only for the same key (:mod:`tsb_aihw.pipeline.checkpoint_keys`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.models.pretrained import load_state_checked
from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import study_config_from_dict
from tsb_aihw.records import ExportedModel, ModelIndex, StudyResult, TrainingMeta, read_record, training_meta
from tsb_aihw.records.base import DAMAGED
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.schema import differing_keys
from tsb_aihw.utils.store import Checkpoints, check_state_dict, key_differences, key_fingerprint, read_checkpoint
from tsb_aihw.utils.torchfile import read_state_dict


@dataclass(frozen=True)
class Adopted:
    """A model another run trained for this key: its weights, its training meta (``adopted_from``: the file to
    blame if the weights do not fit) and the key's fingerprint."""

    state_dict: dict[str, torch.Tensor]
    meta: TrainingMeta
    fingerprint: str


class ModelSources:
    """Where a study's trained models are found before any is trained: this run's checkpoints, else the same
    model (same key) in a ``models_from`` folder, copied into this run's checkpoints with where it came from; and
    where a run keeps its training-state snapshots (resume, (b)'s stops), here and in those folders. Workers
    (``can_train=False``) only load this run's checkpoints."""

    def __init__(self, checkpoints: Checkpoints, models_from: Sequence[str | os.PathLike] = (),
                 can_train: bool = True):
        self.ckpt, self.can_train = checkpoints, can_train
        self.models_from = [Path(p) for p in models_from]

    def load(self, file: str, key: JsonObject, model: nn.Module) -> TrainingMeta | None:
        """Load ``model`` from this directory's checkpoint, else from the same model (same key) in a
        ``models_from`` folder, then copied into this directory's checkpoints with where it came from in its
        meta; returns the training meta, or None: it must be trained.

        Adopted weights are checked against the model before they are copied, and a mismatch names the source
        file (not this directory's copy, which is never written)."""
        hit = self.ckpt.load(file, key)
        if hit is not None:
            load_state_checked(model, hit.state_dict, str(self.ckpt.path(file)))
            return training_meta(hit.meta, str(self.ckpt.path(file)))
        if not (self.models_from and self.can_train):
            return None
        for source in self.models_from:
            found = find_trained(source, file, key)
            if isinstance(found, str):
                print(f"tsb-aihw: {found}", flush=True)
                continue
            source_file = str(found.meta.adopted_from)
            load_state_checked(model, found.state_dict, source_file)
            self.ckpt.save(file, key, found.state_dict, found.meta.to_dict())
            print(f"tsb-aihw: {file} taken from {source_file} (not re-trained)", flush=True)
            return found.meta
        return None

    def save(self, file: str, key: JsonObject, model: nn.Module, meta: TrainingMeta) -> None:
        """Checkpoint a model trained here with its training meta."""
        self.ckpt.save(file, key, model.state_dict(), meta.to_dict())

    def need_training(self, file: str) -> None:
        """Training ``file`` here is allowed (the parent), else one line saying why a worker cannot."""
        if not self.can_train:
            raise TSBError(f"worker: no checkpoint {self.ckpt.path(file)}; training runs in the parent before cells "
                           "are dispatched, so the worker must see the parent's output directory (a shared "
                           "filesystem) and the same config")

    def train_state_dir(self, file: str) -> Path:
        """Where the run of checkpoint ``file`` keeps its training-state snapshots (resume and stops)."""
        return self.ckpt.root.parent / "train_state" / file

    def train_state_dirs(self, file: str) -> list[Path]:
        """Those snapshots here, then in each ``models_from`` folder (an adopted (b)'s stops)."""
        return [self.train_state_dir(file), *(src / "train_state" / file for src in self.models_from)]


def check_sources(models_from: Sequence[str | os.PathLike]) -> list[Path]:
    """The ``models_from`` folders as paths, each checked to exist: a missing one is a one-line error before
    any output directory is made or anything is trained (every entry point and the CLI call this)."""
    paths = [Path(d) for d in models_from]
    for d in paths:
        if not d.is_dir():
            raise ConfigError(f"--models-from {d}: no such directory; pass a finished run's --out or an exported "
                              "results/<study> folder")
    return paths


def find_trained(source: str | os.PathLike, file: str, key: JsonObject) -> Adopted | str:
    """The model ``file`` (a checkpoint name, e.g. ``backbone_full``) held by ``source`` if it was trained for
    ``key``: ``source`` is a run's output directory (its checkpoints) or an exported folder (``models.json``).

    Returns it (its meta with ``adopted_from``: the file to blame if its weights do not fit), or one line saying
    why it is not taken. A file that claims this key but is damaged (no weights, no meta, a path out of its
    folder) is an error, not a reason to train: the user asked for it. An export made before models.json
    recorded keys is matched by the key its recorded study config gives."""
    source = Path(source)
    holders = [d for d in (source, *sorted(p for p in source.iterdir() if p.is_dir()))
               if (d / "models.json").is_file() or (d / "checkpoints" / f"{file}.pt").is_file()]
    if not holders:
        return f"{source} holds no {file} (neither a models.json entry nor checkpoints/{file}.pt); training it here"
    reasons = []
    for holder in holders:  # a study folder itself, or the per-preset study folders of a run's --out
        found = _find_in(holder, file, key)
        if not isinstance(found, str):
            return found
        reasons.append(found)
    if len(reasons) == 1:
        return reasons[0]
    return f"{source}: no study folder has {file} for this config; training it here"


def _member(source: Path, name: str, where: str) -> Path:
    """``source/name`` for a file an index names: a plain file name in the folder itself (an edited index
    must not make this read ``../x.pt`` or an absolute path)."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise TSBError(f"{source}/models.json: {where} = {name!r} points outside {source}; exported models are "
                       f"files in the exported folder itself: {DAMAGED}")
    return source / name


def _find_in(source: Path, file: str, key: JsonObject) -> Adopted | str:
    if (source / "models.json").is_file():
        index = read_record(ModelIndex, source / "models.json")
        entries = [(i, m) for i, m in enumerate(index.models) if m.checkpoint == f"{file}.pt"]
        if not entries:
            return f"{source}/models.json has no {file}; training it here"
        i, entry = entries[0]
        held = entry.key or _derived_key(source, file, entry)
        if isinstance(held, str):
            return held
        if key_fingerprint(held) != key_fingerprint(key):
            return (f"{source} has {file} trained for another configuration (differs in: "
                    f"{', '.join(differing_keys(held, dict(key))[:8])}); training it here")
        path = _member(source, entry.file, f"models[{i}].file")
        state = dict(check_state_dict(read_state_dict(path), path))
        if entry.base:
            base = _member(source, entry.base, f"models[{i}].base")
            state = {**check_state_dict(read_state_dict(base), base), **state}
        return Adopted(state, dataclasses.replace(entry.meta, adopted_from=str(path)), key_fingerprint(held))
    path = source / "checkpoints" / f"{file}.pt"
    found = read_checkpoint(path)
    differs = key_differences(found, key)
    if differs is not None:
        return f"{path} was trained for another configuration (differs in: {differs}); training it here"
    meta = training_meta(found.meta, str(path))
    return Adopted(dict(found.state_dict), dataclasses.replace(meta, adopted_from=str(path)), key_fingerprint(key))


def _derived_key(source: Path, file: str, entry: ExportedModel) -> JsonObject | str:
    """The key an export without recorded keys was trained for: from its results.json config, checked
    against the noise std its training meta recorded (a preset changed since is a mismatch, not a guess)."""
    try:
        cfg = study_config_from_dict(read_record(StudyResult, source / "results.json").config,
                                     f"{source}/results.json")
        preset = load_preset(cfg.preset, overrides=cfg.preset_overrides)
    except (TSBError, OSError) as exc:
        return f"{source}: cannot tell what {file} was trained for ({exc}); training it here"
    noise_std = cfg.backbone.noise_std if cfg.backbone.noise_std is not None else preset.training_noise_std
    recorded = entry.meta.noise_std
    if recorded is not None and file.startswith("backbone") and abs(float(recorded) - noise_std) > 1e-9 * noise_std:
        return (f"{source}: {file} was trained at noise std {recorded:.6g}, but its config now gives "
                f"{noise_std:.6g} (the preset changed); training it here")
    held = checkpoint_keys(cfg, noise_std).get(file)
    return held if held is not None else f"{source}: {file} is not a checkpoint of its study; training it here"
