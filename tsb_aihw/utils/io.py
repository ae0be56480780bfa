"""Atomic result files: a crash never leaves a half-written JSON/CSV/checkpoint behind."""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tsb_aihw.errors import TSBError


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check we can write into it (before any long computation)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".write-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise TSBError(
            f"output directory {p} is not writable ({exc.strerror}); pass --out with a directory you can write to"
        ) from exc
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Readers see the old file or the new one, never a mix: a kill at any moment leaves at most a hidden
    ``.NAME.*.tmp`` (removed here when Python gets the chance). The directory is fsynced too, so the
    rename itself survives a power cut. A full disk or a read-only directory is a TSBError naming the file."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
        tmp = None
        _fsync_dir(p.parent)
    except OSError as exc:
        raise TSBError(f"cannot write {p} ({exc.strerror or exc}); free disk space there or pass --out with a "
                       "writable directory (finished results are kept: re-run to resume)") from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return p


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """JSON with sorted keys so identical results give identical bytes."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]],
                     fields: Sequence[str] | None = None) -> Path:
    import io

    rows = list(rows)
    if fields is None:
        fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


def read_json(path: str | os.PathLike) -> Any:
    """Load a JSON result file; a corrupt one is a TSBError naming it (atomic writes make that rare: it
    means the file was edited or the disk failed), not a JSONDecodeError traceback."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TSBError(f"{p} is not valid JSON ({exc}); it was edited or damaged: delete it (its results are "
                       "recomputed on the next run) or restore it from a backup") from None


def json_fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (keys sorted), used to match configs with stored results."""
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
