"""Content identity of user-supplied inputs (an image folder or archive, a checkpoint file): a result is reused
only while the content it was computed from is unchanged.

Why two levels: hashing every byte of a CIFAR-10-sized folder on every run would cost seconds, and size + mtime
alone would call a ``touch``ed (or copied) folder changed and miss a rewrite that keeps both. So each file's
relative path, size and mtime_ns (one stat walk) form a *signature*; the sha256 of the content is computed once
per signature and cached in ``cache_dir`` (one small JSON file per path), and the content hash is the identity:
a ``touch`` or a copy keeps it; the one change it misses is a rewrite that keeps every file's size and mtime_ns
(a deliberate ``touch -d`` back), which ordinary edits, copies and renames never do.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import atomic_write_json

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ContentId:
    """What a user-supplied path held when a result was computed: the path and the sha256 of its content."""

    path: str
    sha256: str  # 16 hex digits: of the file, or of a folder's (relative path, file sha256) list

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256}


def _files(top: Path) -> Iterator[tuple[str, os.stat_result, str]]:
    """(relative path, stat, path) of every visible regular file under ``top``, sorted; a folder reached twice
    (a symlink loop) is walked once."""
    seen: set[tuple[int, int]] = set()

    def walk(folder: str, rel: str) -> Iterator[tuple[str, os.stat_result, str]]:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        for entry in entries:
            try:
                if entry.is_dir():  # follows symlinks, as the image reader does
                    yield from walk(entry.path, f"{rel}{entry.name}/")
                elif entry.is_file():
                    yield f"{rel}{entry.name}", entry.stat(), entry.path
            except OSError:
                continue  # a dangling link or an unreadable entry: the data reader names it if it matters

    yield from walk(str(top), "")


def _file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def content_id(path: str | os.PathLike, what: str, cache_dir: Path | None = None) -> ContentId:
    """The content identity of a file or folder tree (``what`` names it in errors, e.g. ``--checkpoint``)."""
    p = Path(path).expanduser().resolve()
    try:
        if p.is_dir():
            listing = list(_files(p))
            signature = hashlib.sha256("".join(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
                                               for rel, st, _ in listing).encode()).hexdigest()
        else:
            st = os.stat(p)
            listing = [("", st, str(p))]
            signature = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError as exc:
        raise ConfigError(f"{what} {p}: cannot read it ({exc.strerror or exc})") from None
    cache = cache_dir / f"{hashlib.sha256(str(p).encode()).hexdigest()[:24]}.json" if cache_dir else None
    try:
        held = json.loads(cache.read_text()) if cache is not None else None
    except (OSError, ValueError):
        held = None
    if isinstance(held, dict) and held.get("signature") == signature and isinstance(held.get("sha256"), str):
        return ContentId(str(p), held["sha256"])
    h = hashlib.sha256()
    for rel, _st, f in listing:
        h.update(f"{rel}\0{_file_sha(f)}\n".encode())
    digest = h.hexdigest()[:16]
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(cache, {"path": str(p), "signature": signature, "sha256": digest})
        except Exception:  # noqa: BLE001 - a cache that cannot be written only costs a re-hash next time
            pass
    return ContentId(str(p), digest)
