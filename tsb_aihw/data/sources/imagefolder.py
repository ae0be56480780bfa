"""``imagefolder:<path>``: a class-per-folder image tree, or a .tar.gz of one, decoded once and cached.

Reading uses torchvision's ``ImageFolder`` (and its PIL loader). Decoding tens of thousands of JPEGs
takes a while, so the decoded uint8 images are saved as one tensor file (atomically), keyed by the
source's fingerprint and the image size, and later runs load that file instead.

Cache layout under the cache root (``root`` or ``$TSB_AIHW_CACHE`` or ``~/.cache/tsb_aihw``)::

    imagefolder/<stem>-<fingerprint>/extracted/...          (archives only)
    imagefolder/<stem>-<fingerprint>/decoded-<H>x<W>.pt
"""
from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from tsb_aihw.data.cache import cache_root, writable_dir
from tsb_aihw.data.sources import archive as arc
from tsb_aihw.data.sources.base import Pool, RootArg
from tsb_aihw.errors import DataError
from tsb_aihw.utils.io import atomic_write_bytes

CACHE_FORMAT = 1
FOLDER_HINT = (
    "a folder with one sub-folder of images per class (e.g. cat/0001.jpg, dog/0002.jpg), or a .tar.gz of one"
)


class _ClassFolders(ImageFolder):
    """ImageFolder that ignores hidden folders and macOS debris instead of taking them for classes."""

    def find_classes(self, directory: str | os.PathLike) -> tuple[list[str], dict[str, int]]:
        entries = os.scandir(str(directory))
        classes = sorted(e.name for e in entries if e.is_dir() and not arc.is_hidden(e.name))
        if not classes:
            raise FileNotFoundError(f"no class folders in {directory}")
        return classes, {c: i for i, c in enumerate(classes)}


def _valid_file(path: str) -> bool:
    return arc.is_image_name(os.path.basename(path))


def decode_tree(
    class_root: Path, size: tuple[int, int], desc: str = "decoding"
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Read every image under ``class_root`` as RGB uint8 ``[N, 3, H, W]`` (resized when not ``size``)."""
    try:
        folder = _ClassFolders(str(class_root), is_valid_file=_valid_file)
    except FileNotFoundError as exc:
        has_loose = any(arc.is_image_name(e.name) for e in os.scandir(class_root) if e.is_file())
        if has_loose:
            what = "images lie directly in it, not in class folders"
        else:
            what = "no class folders with images"
        raise DataError(
            f"no usable image tree at {class_root}: {what} ({exc}); imagefolder needs {FOLDER_HINT}"
        ) from exc
    h, w = size
    images = torch.empty((len(folder.samples), 3, h, w), dtype=torch.uint8)
    for i, (path, _) in enumerate(tqdm(folder.samples, desc=desc, unit="img", disable=None, mininterval=2.0)):
        try:
            img = folder.loader(path)  # PIL, converted to RGB
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot decode image {path} ({exc}); delete or replace that file") from exc
        if img.size != (w, h):
            img = F.resize(img, [h, w], antialias=True)
        images[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    targets = torch.as_tensor(folder.targets, dtype=torch.int64)
    return images, targets, tuple(folder.classes)


def _read_cache(path: Path, fingerprint: str, size: tuple[int, int]) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = (
            isinstance(blob, dict)
            and blob.get("format") == CACHE_FORMAT
            and blob.get("fingerprint") == fingerprint
            and blob["images"].dtype == torch.uint8
            and tuple(blob["images"].shape[1:]) == (3, *size)
            and len(blob["images"]) == len(blob["targets"]) > 0
        )
    except Exception as exc:  # unreadable cache is never fatal: decode again and overwrite it
        warnings.warn(f"ignoring unreadable decoded-image cache {path} ({exc}); decoding again", stacklevel=3)
        return None
    return blob if ok else None


def _write_cache(path: Path, blob: dict) -> None:
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())


@functools.lru_cache(maxsize=2)
def _cached_pool(
    decoded: str, fingerprint: str, size: tuple[int, int], source: str, is_archive: bool
) -> Pool:
    """Load (or build) the decoded pool; memoised per process so train/val/test share one copy."""
    decoded_path = Path(decoded)
    blob = _read_cache(decoded_path, fingerprint, size)
    if blob is None:
        src = Path(source)
        writable_dir(decoded_path.parent)
        tree = arc.extract_once(src, decoded_path.parent / "extracted") if is_archive else src
        class_root = arc.find_class_root(tree)
        images, targets, classes = decode_tree(class_root, size, desc=f"decoding {src.name}")
        blob = {"format": CACHE_FORMAT, "fingerprint": fingerprint, "source": source, "images": images,
                "targets": targets, "classes": list(classes), "class_root": str(class_root.relative_to(tree))}
        _write_cache(decoded_path, blob)
    n = len(blob["targets"])
    desc = f"the {n:,} images of {Path(source).name}"
    return Pool(blob["images"], blob["targets"], tuple(blob["classes"]), desc)


def clear_memo() -> None:
    """Forget pools loaded in this process (the on-disk caches stay)."""
    _cached_pool.cache_clear()


def cache_entry(path: Path, root: RootArg) -> tuple[Path, str]:
    """The cache folder for ``path`` and its fingerprint (validates the path first)."""
    if not path.exists():
        raise DataError(f"imagefolder path {path} does not exist; pass imagefolder:<path> with {FOLDER_HINT}")
    if path.is_dir():
        fp, stem = arc.fingerprint_tree(path), path.name
    elif arc.is_archive(path):
        arc.check_gzip(path)
        fp, stem = arc.fingerprint_file(path), arc.archive_stem(path)
    else:
        raise DataError(
            f"imagefolder path {path} is neither a folder nor a .tar.gz/.tgz archive; pass {FOLDER_HINT}"
        )
    return cache_root(root) / "imagefolder" / f"{stem}-{fp}", fp


def load_imagefolder(
    path: str, part: str, root: RootArg, download: bool, size: tuple[int, int]
) -> Pool:
    """All images under ``path`` (folder or archive) as RGB uint8 at ``size``; ``root`` is the cache root."""
    p = Path(path).expanduser().resolve()
    entry, fp = cache_entry(p, root)
    decoded = entry / f"decoded-{size[0]}x{size[1]}.pt"
    return _cached_pool(str(decoded), fp, tuple(size), str(p), arc.is_archive(p))
