"""Where downloaded, extracted and decoded data live: one cache root, overridable per call or by env."""
from __future__ import annotations

import os
from pathlib import Path

from tsb_aihw.errors import DataError

CACHE_ENV = "TSB_AIHW_CACHE"


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else ``$TSB_AIHW_CACHE``, else ``~/.cache/tsb_aihw`` (not created here)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tsb_aihw"


def writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise a DataError saying how to pick another cache directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data cache directory {path} ({exc.strerror or exc}); set {CACHE_ENV} to a "
            "writable directory or set data.root in the config (root= in Python)"
        ) from exc
    if not os.access(path, os.W_OK):
        raise DataError(
            f"the data cache directory {path} is not writable; set {CACHE_ENV} to a writable directory "
            "or set data.root in the config (root= in Python)"
        )
    return path
