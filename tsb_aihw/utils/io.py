"""Atomic result files: a crash never leaves a half-written JSON/CSV/checkpoint behind."""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import numbers
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, TypeAlias, Union

from tsb_aihw.errors import TSBError
from tsb_aihw.utils.text import short_repr

#: a parsed or about-to-be-written JSON object whose shape no schema owns (a ``to_dict()`` form, a config tree
#: before it is parsed, a store's cells); structured data has its own dataclass instead
JsonObject = dict[str, Any]
#: one JSON value as parsed (a dotted override's value: a scalar, or a list or mapping of them)
JsonValue: TypeAlias = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]
#: one CSV row: column -> cell value
CsvRow = Mapping[str, object]


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


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (there is no getter: set and restore it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def write_failure(path: str | os.PathLike, exc: OSError) -> TSBError:
    """The one-line error for a failed result write: disk full vs. not writable, and how to go on."""
    p = Path(path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TSBError(f"cannot write {p}: no space left on the device ({exc.strerror or exc}); free space "
                        "and re-run to resume (finished results and files written before are kept)")
    return TSBError(f"cannot write {p} ({exc.strerror or exc}); pass --out with a writable directory and re-run "
                    "to resume (finished results are kept)")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename.

    Readers see the old file or the new one, never a mix: a kill at any moment leaves at most a hidden
    ``.NAME.*.tmp`` (removed here when Python gets the chance). The directory is fsynced too, so the
    rename itself survives a power cut. The file gets mode 0666 minus the umask (0644 usually), as a plain
    ``open`` would give it, not mkstemp's 0600: a Dask worker or a colleague running as another user must be
    able to read results. A full disk or a read-only directory is a TSBError naming the file."""
    p = Path(path)
    tmp = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
        tmp = None
        _fsync_dir(p.parent)
    except OSError as exc:
        raise write_failure(p, exc) from exc
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return p


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path next to ``path`` for writers that want a file name (``savefig``), renamed on success.

    Keeps the extension (matplotlib picks the format from it). On any error the temporary file is removed and
    ``path`` is left as it was; an OSError (disk full) becomes the one-line TSBError of :func:`write_failure`.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp{p.suffix}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, p)
    except OSError as exc:
        raise write_failure(p, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


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


def atomic_write_csv(path: str | os.PathLike, rows: Iterable[CsvRow],
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


def read_json(path: str | os.PathLike, expect: type | tuple[type, ...] | None = None) -> Any:
    """Load a JSON result file; a corrupt one is a TSBError naming it (atomic writes make that rare: it
    means the file was edited or the disk failed), not a JSONDecodeError traceback.

    ``expect`` (e.g. ``dict``): the type the top level must have; stores pass it so a file of the wrong shape
    (a list where a mapping was saved) is refused here instead of failing as a KeyError later. A missing file
    still raises FileNotFoundError (callers test for "not written yet").
    """
    p = Path(path)
    fix = "delete it (its results are recomputed on the next run) or restore it from a backup"
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TSBError(f"{p} is not valid JSON ({exc}); it was edited or damaged: {fix}") from None
    except FileNotFoundError:
        raise
    except RecursionError:
        raise TSBError(f"{p} nests too deeply to be a result file; it was edited or damaged: {fix}") from None
    except OSError as exc:
        raise TSBError(f"cannot read {p} ({exc.strerror or exc}); make it a readable result file or {fix}") from None
    if expect is not None:
        check_json_type(data, expect, str(p))
    return data


def _type_names(expect: type | tuple[type, ...]) -> str:
    names = {dict: "a mapping (JSON object)", list: "a list (JSON array)", str: "a string", float: "a number",
             int: "an integer", bool: "true/false"}
    types_ = expect if isinstance(expect, tuple) else (expect,)
    return " or ".join(names.get(t, t.__name__) for t in types_)


def check_json_type(value: Any, expect: type | tuple[type, ...], where: str) -> Any:
    """``value`` if it is an ``expect``; else a one-line TSBError naming ``where`` (file and key) and the fix."""
    if isinstance(value, bool) and bool not in (expect if isinstance(expect, tuple) else (expect,)):
        ok = False
    else:
        ok = isinstance(value, expect)
    if not ok:
        raise TSBError(f"{where} holds {type(value).__name__} {short_repr(value, 60)} where {_type_names(expect)} "
                       "was saved; it was edited or damaged: delete it (its results are recomputed on the next run) "
                       "or restore it from a backup")
    return value


def check_accuracy(value: Any, where: str) -> float:
    """A stored accuracy as a float in [0, 1]; a one-line TSBError for anything else (-3, 7.5, NaN, "0.9").

    Accuracies are fractions in every result file; a value outside [0, 1] means the file was edited by hand
    or damaged, and averaging it into a table would report a number no chip could reach.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TSBError(f"{where}: accuracy {short_repr(value, 60)} is not a number; the file was edited or "
                       "damaged: delete it (its results are recomputed on the next run) or restore it from a backup")
    v = float(value) if not isinstance(value, numbers.Integral) or abs(value) <= 1 else math.inf
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise TSBError(f"{where}: accuracy {short_repr(value, 60)} is impossible (accuracies are fractions in "
                       "[0, 1]); the file was edited or damaged: delete it (its results are recomputed on the next "
                       "run) or restore it from a backup")
    return v


def check_accuracies(values: Any, where: str) -> list[float]:
    """A stored list of accuracies (e.g. one per drift time), each checked by :func:`check_accuracy`."""
    check_json_type(values, list, where)
    return [check_accuracy(v, f"{where}[{i}]") for i, v in enumerate(values)]


def json_fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (keys sorted), used to match configs with stored results."""
    import hashlib

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
