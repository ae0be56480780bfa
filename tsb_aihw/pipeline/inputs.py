"""The user-supplied files a result depends on, by content: an ``imagefolder:`` dataset and a ``--checkpoint``.

Why only these: registry datasets (digits, mnist5k, mnist, cifar10) are fixed by their name and checked by their
own loaders, presets are already named by their content, and a model taken with ``--models-from`` is copied into
``--out`` (its own checkpoint is what later runs use). A result store's identity and the keys of trained models
carry these content identities, so a folder or checkpoint changed in place meets its finished results as one
line naming what changed (:class:`tsb_aihw.utils.store.ResultStore`), never as silently reused cells. Leaving
them out where no such path is involved keeps every existing store and checkpoint key.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from tsb_aihw.data.cache import cache_root
from tsb_aihw.data.registry import IMAGEFOLDER_PREFIX
from tsb_aihw.utils.content import content_id
from tsb_aihw.utils.io import JsonObject


def imagefolder_path(dataset: str) -> Path | None:
    """The folder or archive of an ``imagefolder:PATH`` dataset name (None for registry datasets)."""
    name = str(dataset).strip()
    if not name.lower().startswith(IMAGEFOLDER_PREFIX):
        return None
    return Path(name[len(IMAGEFOLDER_PREFIX):].strip()).expanduser()


def content_identities(paths: Mapping[str, Path | str | None]) -> dict[str, dict[str, str]]:
    """``{name: {path, sha256}}`` of each given path that exists (a missing one is left to its loader, which
    names it with the fix); hashes are cached under the data cache root."""
    cache = cache_root() / "content"
    return {name: content_id(p, name, cache).to_dict() for name, p in paths.items()
            if p is not None and Path(p).expanduser().exists()}


def data_inputs(dataset: str) -> dict[str, dict[str, str]]:
    """The content identity of a study's dataset when it is a user's image folder or archive, else nothing."""
    return content_identities({"data": imagefolder_path(dataset)})


def with_inputs(identity: JsonObject, inputs: JsonObject) -> JsonObject:
    """``identity`` plus its ``inputs`` (none: unchanged, so stores without user paths keep their identity)."""
    return {**identity, "inputs": dict(inputs)} if inputs else identity
