"""Reading a torch file safely: one owner for every checkpoint, state dict and store file the project loads."""
from __future__ import annotations

import os
from typing import Any

import torch

from tsb_aihw.errors import ConfigError


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first sentence`` of an exception: torch's load errors run to several paragraphs."""
    lines = str(exc).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {text[:limit]}"


def read_state_dict(path: str | os.PathLike, weights_only: bool = True) -> Any:
    """The raw object in a torch checkpoint file; ConfigError (one line, with the fix) if missing or unreadable.

    ``weights_only=True`` (the default) refuses pickled code, so a foreign file cannot run anything."""
    p = os.fspath(path)
    if os.path.isdir(p):
        raise ConfigError(f"checkpoint {p} is a directory, not a file; give the path of a file saved with "
                          "torch.save(model.state_dict(), path)")
    if not os.path.isfile(p):
        raise ConfigError(f"checkpoint {p} does not exist; give the path of a file saved with "
                          "torch.save(model.state_dict(), path)")
    try:
        return torch.load(p, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt, not a torch file, pickled code
        raise ConfigError(f"cannot read {p} as a torch checkpoint ({_first_line(exc)}); it is corrupt or not a "
                          "torch file: delete it (a study re-trains it) or save it again with "
                          "torch.save(model.state_dict(), path)") from None
