"""The one result store: an output directory bound to one configuration, its finished cells and checkpoints.

Policy, the same for every command that resumes (``run``, ``demo``, ``sweep``, ``drift``, ``refresh``):

- ``OUT/store.json`` records what the directory holds: a kind (``study``, ``sweep``, ...), an identity (the
  configuration's non-default values, ``utils.schema.non_default_tree``, minus what only selects cells, such as
  the chip count) and the finished cells, each keyed by its own full fingerprint (config, preset content, model,
  data, seed, chip). A schema that gains a field with a neutral default keeps every identity and key.
- A run into a directory that holds another configuration's results refuses, in one line naming the keys
  that differ and the choices: another ``--out``, or ``--move-aside``, which renames the old directory to
  ``OUT.moved-<UTC time>`` (nothing is ever deleted).
- A damaged or mis-shaped ``store.json`` (or cell) is a clear error, never silently used or discarded.
- Two runs never share a directory at once: the store holds an advisory lock while its run lives.
"""
from __future__ import annotations

import fcntl
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.utils.io import atomic_write_bytes, atomic_write_json, ensure_writable_dir, json_fingerprint, read_json
from tsb_aihw.utils.schema import differing_keys

STORE_FILE = "store.json"
SCHEMA = "tsb-aihw-store/1"
LOCK_FILE = ".tsb-aihw.lock"
#: result files of earlier versions: a directory holding them but no store.json is refused too
LEGACY_FILES = ("cells.json", "sweep_cells.json", "refresh_cells.json", "drift.json", "results.json")
_LOCKS: dict[str, Any] = {}  # directories this process holds (a process may reopen its own store)


def _normal(obj: Any) -> Any:
    """JSON round trip, so an identity compares equal to the same identity read back from disk."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def key_fingerprint(key: Mapping[str, Any]) -> str:
    """The fingerprint a checkpoint's key is stored and compared by."""
    return json_fingerprint(_normal(dict(key)))


def key_differences(blob: Mapping[str, Any], key: Mapping[str, Any]) -> str | None:
    """None if the checkpoint ``blob`` was trained for ``key``, else the keys that differ (up to 8)."""
    if blob.get("fingerprint") == key_fingerprint(key):
        return None
    return ", ".join(differing_keys(blob.get("key"), _normal(dict(key)))[:8])


def move_aside_hint(out: Path) -> str:
    return f"pass another --out, or add --move-aside to rename {out} to {out}.moved-<time> (nothing is deleted)"


def rename_aside(path: Path, what: str) -> Path:
    """Rename ``path`` to ``path.moved-<UTC time>[-n]`` (never onto an existing name) and say so; returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.moved-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.moved-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    print(f"tsb-aihw: moved the earlier {what} in {path} to {target}", flush=True)
    return target


class ResultStore:
    """Finished cells of one configuration in ``OUT/store.json`` (see the module docstring)."""

    def __init__(self, out: str | os.PathLike, kind: str, identity: Mapping[str, Any], *, move_aside: bool = False):
        self.out = Path(out)
        self.path = self.out / STORE_FILE
        self.kind = kind
        self.identity = _normal(dict(identity))
        held = self._read() if self.path.exists() else None
        if held is not None and (held["kind"] != kind or held["identity"] != self.identity):
            if not move_aside:
                if held["kind"] != kind:
                    what = f"results of a {held['kind']} run"
                else:
                    keys = differing_keys(held["identity"], self.identity)
                    what = f"results of another {kind} configuration (differs in: {', '.join(keys[:8])})"
                raise ConfigError(f"{self.out} holds {what}; {move_aside_hint(self.out)}")
            self._move_aside()
            held = None
        elif held is None and self.out.is_dir():
            legacy = [n for n in LEGACY_FILES if (self.out / n).exists()]
            if legacy and not move_aside:
                raise ConfigError(f"{self.out} holds results without a store.json ({', '.join(legacy)}: an earlier "
                                  f"version or another tool); {move_aside_hint(self.out)}")
            if legacy:
                self._move_aside()
        ensure_writable_dir(self.out)
        self._lock()
        self.cells: dict[str, Any] = held["cells"] if held is not None else {}
        if held is None:
            self._write()

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

    def _read(self) -> dict[str, Any]:
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

    def _move_aside(self) -> None:
        release(self.out)
        rename_aside(self.out, "results")

    def _lock(self) -> None:
        key = str(self.out.resolve())
        if key in _LOCKS:
            return
        fh = open(self.out / LOCK_FILE, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            who = fh.read().strip() or "another process"
            fh.close()
            raise ConfigError(f"{self.out} is in use by another tsb-aihw run ({who}); wait for it to finish or pass "
                              "another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        _LOCKS[key] = fh

    def close(self) -> None:
        """Release the directory lock (a finished run; also released when the process ends)."""
        release(self.out)


def release(out: Path) -> None:
    fh = _LOCKS.pop(str(Path(out).resolve()), None)
    if fh is not None:
        fh.close()


class Checkpoints:
    """Trained digital weights plus the key that produced them, so a re-run reuses a backbone or block.

    A checkpoint whose key differs from the one asked for is an error: the store's identity already says
    this directory belongs to this configuration, so a mismatch means a damaged or hand-edited file."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / f"{name}.pt"

    def load(self, name: str, key: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        from tsb_aihw.utils.torchfile import read_state_dict

        path = self.path(name)
        if not path.exists():
            return None
        blob = read_state_dict(path)  # weights_only: tensors + plain data; a damaged file is a ConfigError
        if not isinstance(blob, dict) or not isinstance(blob.get("state_dict"), dict):
            raise ConfigError(f"{path} is not a tsb-aihw checkpoint (no state_dict); "
                              f"{move_aside_hint(self.root.parent)}")
        differs = key_differences(blob, key)
        if differs is not None:
            raise ConfigError(f"{path} was trained for another configuration (differs in: {differs}); "
                              f"{move_aside_hint(self.root.parent)}")
        return blob["state_dict"], blob.get("meta") or {}

    def save(self, name: str, key: Mapping[str, Any], state: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({"fingerprint": key_fingerprint(key), "key": _normal(dict(key)), "state_dict": dict(state),
                    "meta": dict(meta)}, buf)
        atomic_write_bytes(self.path(name), buf.getvalue())
