"""The one result store: an output directory bound to one configuration, its finished cells and checkpoints.

Policy, the same for every command that resumes (``run``, ``demo``, ``sweep``, ``drift``, ``refresh``):

- ``OUT/store.json`` records what the directory holds: a kind (``study``, ``sweep``, ...), an identity (the
  configuration's non-default values, ``utils.schema.non_default_tree``, minus what only selects cells, such as
  the chip count) and the finished cells, each keyed by its own full fingerprint (config, preset content, model,
  data, seed, chip). A schema that gains a field with a neutral default keeps every identity and key.
- A run into a directory that holds another configuration's results refuses, in one line naming the keys
  that differ and the choices: another ``--out``, or ``--move-aside``, which renames the old directory to
  ``OUT.moved-<UTC time>`` (nothing is ever deleted).
- An input named by content (``inputs.NAME``: path and sha256, ``pipeline.inputs``) is compared by its sha256
  alone: where the file lies is recorded, not compared, so a clone in another place (CI's, a colleague's)
  resumes the same results, and a file changed in place is still refused, named by its path.
- A damaged or mis-shaped ``store.json`` (or cell) is a clear error, never silently used or discarded.
- One lock discipline: a store holds an advisory lock (``OUT/.tsb-aihw.lock``) while its run lives, taken
  *before* the directory is read; whatever moves a directory aside (:func:`rename_aside`) or exports it takes
  the same lock first (:func:`holding`), so a live run is never renamed, mixed or exported half-written.
"""
from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, TextIO

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.utils.io import (
    JsonObject,
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable_dir,
    json_fingerprint,
    read_json,
)
from tsb_aihw.utils.schema import differing_keys

if TYPE_CHECKING:  # torch is imported where a checkpoint is read or written, not by every store user
    import torch

STORE_FILE = "store.json"
SCHEMA = "tsb-aihw-store/1"
LOCK_FILE = ".tsb-aihw.lock"
#: result files of earlier versions: a directory holding them but no store.json is refused too
LEGACY_FILES = ("cells.json", "sweep_cells.json", "refresh_cells.json", "drift.json", "results.json")
_LOCKS: dict[str, TextIO] = {}  # directories this process holds (a process may reopen its own store)


def _normal(obj: Any) -> Any:
    """JSON round trip, so an identity compares equal to the same identity read back from disk."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def comparable_identity(identity: Any) -> Any:
    """``identity`` without the paths of its content identities (each ``inputs.NAME.path``): what two stores
    are compared by, and what a fingerprint of an identity that should not depend on the clone's place takes."""
    if isinstance(identity, list):
        return [comparable_identity(v) for v in identity]
    if not isinstance(identity, dict):
        return identity
    out = {}
    for k, v in identity.items():
        if k == "inputs" and isinstance(v, dict):
            out[k] = {name: ({f: x for f, x in entry.items() if f != "path"}
                             if isinstance(entry, dict) and "sha256" in entry else comparable_identity(entry))
                      for name, entry in v.items()}
        else:
            out[k] = comparable_identity(v)
    return out


def key_fingerprint(key: JsonObject) -> str:
    """The fingerprint a checkpoint's key is stored and compared by."""
    return json_fingerprint(_normal(dict(key)))


def key_differences(held: "TrainedState", key: JsonObject) -> str | None:
    """None if the checkpoint ``held`` was trained for ``key``, else the keys that differ (up to 8)."""
    if held.fingerprint == key_fingerprint(key):
        return None
    return ", ".join(differing_keys(held.key, _normal(dict(key)))[:8])


@dataclass(frozen=True)
class TrainedState:
    """A trained model as a checkpoint holds it: its weights, its training meta and the key it was trained for
    (None for a plain exported state dict)."""

    state_dict: dict[str, torch.Tensor]
    meta: JsonObject
    key: JsonObject | None = None
    fingerprint: str | None = None


DAMAGED_CHECKPOINT = "it was edited or damaged: delete it (the model is trained again) or restore it"


def check_state_dict(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``obj`` if it is a state dict (names to tensors), else one line naming the file."""
    import torch

    if not isinstance(obj, dict) or not obj:
        raise ConfigError(f"{path} holds no state dict (got {type(obj).__name__}); {DAMAGED_CHECKPOINT}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ConfigError(f"{path}: state dict entry {str(bad[0])[:80]!r} is not a named tensor; {DAMAGED_CHECKPOINT}")
    return obj


def check_meta(meta: Any, path: str | os.PathLike) -> JsonObject:
    """A checkpoint's training meta: a mapping with the training time every report reads (``train_time_s``)."""
    if not isinstance(meta, dict):
        raise ConfigError(f"{path} has no training meta (got {type(meta).__name__}); {DAMAGED_CHECKPOINT}")
    t = meta.get("train_time_s")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 or t == float("inf"):
        raise ConfigError(f"{path}: meta.train_time_s = {t!r} is not a time in seconds (>= 0); {DAMAGED_CHECKPOINT}")
    return meta


def read_checkpoint(path: str | os.PathLike) -> TrainedState:
    """A ``Checkpoints`` file, checked: weights, meta and key present and of the right types; one line else."""
    from tsb_aihw.utils.torchfile import read_state_dict

    blob = read_state_dict(path)  # weights_only: tensors + plain data; a damaged file is a ConfigError
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ConfigError(f"{path} is not a tsb-aihw checkpoint (no state_dict); {DAMAGED_CHECKPOINT}")
    key, fingerprint = blob.get("key"), blob.get("fingerprint")
    if not isinstance(key, dict) or not isinstance(fingerprint, str):
        raise ConfigError(f"{path} is not a tsb-aihw checkpoint (no key it was trained for); {DAMAGED_CHECKPOINT}")
    return TrainedState(check_state_dict(blob["state_dict"], path), check_meta(blob.get("meta"), path), key,
                        fingerprint)


def move_aside_hint(out: Path) -> str:
    return f"pass another --out, or add --move-aside to rename {out} to {out}.moved-<time> (nothing is deleted)"


def check_out_path(out: Path, flag: str = "--out") -> None:
    """A path the file system cannot hold (a name over 255 bytes, a path over 4096) is one line, not an OSError
    from the first ``exists()``."""
    try:
        os.stat(out)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            longest = max((len(os.fsencode(part)) for part in out.parts), default=0)
            raise ConfigError(f"{flag} {str(out)[:60]}...: the path is too long for the file system "
                              f"({len(os.fsencode(out))} bytes, longest name {longest} bytes; most allow 255 per "
                              f"name and 4096 in all); pass a shorter {flag}") from None
        # another OSError (not a directory, permission): ensure_writable_dir names it with the fix


def rename_aside(path: Path, what: str) -> Path:
    """Rename ``path`` to ``path.moved-<UTC time>[-n]`` (never onto an existing name) and say so; returns it.

    Refused while a live run holds ``path`` (its lock, or a sub-folder's), and for the current directory or
    one above it (renaming it would leave this process writing into the moved folder)."""
    here, target_dir = Path.cwd().resolve(), path.resolve()
    if here == target_dir or target_dir in here.parents:
        raise ConfigError(f"cannot move {path} aside: it is the current directory (or holds it); change to "
                          f"another directory first, or pass another --out")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = target_dir.with_name(f"{target_dir.name}.moved-{stamp}")
    n = 1
    while target.exists():
        target = target_dir.with_name(f"{target_dir.name}.moved-{stamp}-{n}")
        n += 1
    with holding(path, "move it aside"):
        os.replace(target_dir, target)
        for key in [k for k in _LOCKS if k == str(target_dir) or k.startswith(f"{target_dir}{os.sep}")]:
            _LOCKS.pop(key).close()  # locks this process held there now belong to the moved folder
    print(f"tsb-aihw: moved the earlier {what} in {path} to {target}", flush=True)
    return target


class ResultStore:
    """Finished cells of one configuration in ``OUT/store.json`` (see the module docstring)."""

    def __init__(self, out: str | os.PathLike, kind: str, identity: JsonObject, *, move_aside: bool = False):
        self.out = Path(out)
        self.path = self.out / STORE_FILE
        self.kind = kind
        self.identity = _normal(dict(identity))
        check_out_path(self.out)
        held_before = _lock_key(self.out) in _LOCKS if self.out.is_dir() else False
        try:
            self.cells: JsonObject = self._open(move_aside)
        except BaseException:
            if not held_before:
                release(self.out)
            raise

    def _open(self, move_aside: bool) -> JsonObject:
        """Lock, read, compare, move aside if asked, create: the finished cells this store resumes from."""
        if self.out.is_dir():
            ensure_writable_dir(self.out)
            acquire(self.out, note=False)  # before reading: what is read stays true while this process decides
        held = self._read() if self.path.exists() else None
        if held is not None and (held["kind"] != self.kind
                                 or comparable_identity(held["identity"]) != comparable_identity(self.identity)):
            if not move_aside:
                raise ConfigError(f"{self.out} holds {self._what_differs(held)}; {move_aside_hint(self.out)}")
            rename_aside(self.out, "results")
            held = None
        elif held is None and self.out.is_dir():
            legacy = [n for n in LEGACY_FILES if (self.out / n).exists()]
            if legacy and not move_aside:
                raise ConfigError(f"{self.out} holds results without a store.json ({', '.join(legacy)}: an earlier "
                                  f"version or another tool); {move_aside_hint(self.out)}")
            if legacy:
                rename_aside(self.out, "results")
        ensure_writable_dir(self.out)
        acquire(self.out)
        if held is None:
            self.cells = {}
            self._write()
            return {}
        return dict(held["cells"])

    def _what_differs(self, held: JsonObject) -> str:
        """What the directory holds instead, in words; an input whose content changed is named by its path."""
        if held["kind"] != self.kind:
            return f"results of a {held['kind']} run"
        keys = differing_keys(comparable_identity(held["identity"]), comparable_identity(self.identity))
        changed = _changed_inputs(keys, self.identity)
        if changed:
            return (f"results computed from other content of {', '.join(changed)} (changed since those results "
                    f"were computed; differs in: {', '.join(keys[:8])})")
        return f"results of another {self.kind} configuration (differs in: {', '.join(keys[:8])})"

    # -- cells --------------------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """A finished cell's stored value, or None."""
        return self.cells.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.cells

    def put(self, key: str, value: Any) -> None:
        """Save one finished cell (the whole file is rewritten atomically, so a kill keeps every cell)."""
        self.cells[key] = _normal(value)
        self._write()

    @property
    def checkpoints(self) -> "Checkpoints":
        return Checkpoints(self.out / "checkpoints")

    # -- file ---------------------------------------------------------------------------------------------
    def _write(self) -> None:
        atomic_write_json(self.path, {"schema": SCHEMA, "kind": self.kind, "identity": self.identity,
                                      "cells": self.cells})

    def _read(self) -> JsonObject:
        fix = f"it was edited or damaged; {move_aside_hint(self.out)}"
        try:
            blob = read_json(self.path)
        except TSBError:
            raise ConfigError(f"{self.path} is not valid JSON; {fix}") from None
        shape = {"schema": str, "kind": str, "identity": dict, "cells": dict}
        bad = [k for k, t in shape.items() if not isinstance(blob, dict) or not isinstance(blob.get(k), t)]
        if bad or blob["schema"] != SCHEMA:
            what = f"missing or mis-typed {', '.join(bad)}" if bad else f"schema {blob['schema']!r}, not {SCHEMA}"
            raise ConfigError(f"{self.path} is not a tsb-aihw result store ({what}); {fix}")
        return blob

    def close(self) -> None:
        """Release the directory lock (a finished run; also released when the process ends)."""
        release(self.out)


def _changed_inputs(keys: list[str], identity: Any) -> list[str]:
    """``NAME PATH`` of each content identity (an ``inputs.NAME`` entry: path and sha256) among ``keys``."""
    found = set()
    for key in keys:
        parts = key.split(".")
        if "inputs" not in parts[:-1]:
            continue
        i = parts.index("inputs")
        node = identity
        for part in parts[:i + 2]:
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                node = node.get(part) if isinstance(node, dict) else None
        path = node.get("path") if isinstance(node, dict) else None
        found.add(f"{parts[i + 1]} {path}" if path else parts[i + 1])
    return sorted(found)


def _lock_key(out: Path) -> str:
    return str(Path(out).resolve())


def acquire(out: Path, note: bool = True) -> None:
    """Hold ``out``'s lock for this process (again: a no-op); ConfigError naming the holder if another has it.

    ``note``: write this process's id into the lock file (for the message another process shows); left out
    while a store only reads and decides, so a refused run changes nothing in the directory."""
    key = _lock_key(out)
    fh = _LOCKS.get(key)
    if fh is None:
        fh = open(Path(out) / LOCK_FILE, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"{out} is in use by another tsb-aihw run ({who}); wait for it to finish or pass "
                              "another --out") from None
        _LOCKS[key] = fh
    if note:
        fh.seek(0)
        if fh.read() != f"pid {os.getpid()}\n":
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}\n")
            fh.flush()


def release(out: Path) -> None:
    fh = _LOCKS.pop(_lock_key(out), None)
    if fh is not None:
        fh.close()


def _check_free(folder: Path, why: str) -> None:
    """ConfigError if a live run holds ``folder``'s existing lock file (nothing is created here)."""
    lock = folder / LOCK_FILE
    if not lock.is_file() or _lock_key(folder) in _LOCKS:
        return
    with open(lock, "r") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            who = fh.read().strip() or "another process"
            raise ConfigError(f"{folder} is in use by another tsb-aihw run ({who}); cannot {why} while it runs: "
                              "wait for it to finish") from None


@contextmanager
def holding(out: Path, why: str) -> Iterator[None]:
    """Hold ``out``'s lock for the block (and check its sub-folders' locks: a run's per-study folders), so no
    live run is moved or exported under it; a lock this process held before stays held."""
    out = Path(out)
    if not out.is_dir():
        yield
        return
    mine = _lock_key(out) in _LOCKS
    if not mine:
        _check_free(out, why)
        try:
            acquire(out, note=False)
        except OSError:  # a read-only folder or file system: no run can be writing it
            pass
    for sub in sorted(p for p in out.iterdir() if p.is_dir()):
        _check_free(sub, why)
    try:
        yield
    finally:
        if not mine:
            release(out)


class Checkpoints:
    """Trained digital weights plus the key that produced them, so a re-run reuses a backbone or block.

    A checkpoint whose key differs from the one asked for is an error: the store's identity already says
    this directory belongs to this configuration, so a mismatch means a damaged or hand-edited file."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.pt"

    def load(self, name: str, key: JsonObject) -> TrainedState | None:
        path = self.path(name)
        if not path.exists():
            return None
        held = read_checkpoint(path)
        differs = key_differences(held, key)
        if differs is not None:
            raise ConfigError(f"{path} was trained for another configuration (differs in: {differs}); "
                              f"{move_aside_hint(self.root.parent)}")
        return held

    def save(self, name: str, key: JsonObject, state: Mapping[str, torch.Tensor], meta: JsonObject) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({"fingerprint": key_fingerprint(key), "key": _normal(dict(key)), "state_dict": dict(state),
                    "meta": dict(meta)}, buf)
        atomic_write_bytes(self.path(name), buf.getvalue())
