"""Class-per-folder trees packed as .tar.gz: fingerprint, extract once (atomically), find the class root."""
from __future__ import annotations

import errno
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from torchvision.datasets.folder import IMG_EXTENSIONS

from tsb_aihw.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
GZIP_MAGIC = b"\x1f\x8b"
_FP_CHUNK = 1 << 20
# Top-level folder names that mean "split", not "class": a tree holding several of them is ambiguous.
SPLIT_DIR_NAMES = frozenset({"train", "training", "val", "valid", "validation", "test", "testing"})


def is_hidden(name: str) -> bool:
    """Dot files/folders and macOS archive debris (``__MACOSX``, ``._x.jpg``) are never data."""
    return name.startswith(".") or name == "__MACOSX"


def is_image_name(name: str) -> bool:
    return not is_hidden(name) and name.lower().endswith(IMG_EXTENSIONS)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def fingerprint_file(path: Path) -> str:
    """Cheap content key from size, mtime and the first and last MiB: a changed archive gets a new entry."""
    st = path.stat()
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(_FP_CHUNK))
        if st.st_size > _FP_CHUNK:
            fh.seek(max(_FP_CHUNK, st.st_size - _FP_CHUNK))
            h.update(fh.read(_FP_CHUNK))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TreeFile:
    """One visible file found by :func:`walk_files`: its path as found, path relative to the top, and stat."""

    path: Path
    rel: str
    stat: os.stat_result

    @property
    def identity(self) -> tuple[int, int]:
        """(device, inode): the same file reached twice (symlink, hard link) has one identity."""
        return self.stat.st_dev, self.stat.st_ino


def _stat_or_error(path: Path, image: bool) -> os.stat_result | None:
    """``os.stat`` (follows symlinks); None for a non-image that cannot be stat'ed, a DataError for an image."""
    try:
        return os.stat(path)
    except OSError as exc:
        if not image:
            return None
        if os.path.islink(path):
            target = os.readlink(path)
            why = "a symlink loop" if exc.errno == errno.ELOOP else "a broken (dangling) symlink"
            raise DataError(f"{path} is {why} (-> {target}); remove it or point it at an existing image") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise DataError(f"the path of {str(path)[:80]}... is too long for the file system ({len(os.fsencode(path))}"
                            " bytes); move the tree to a shorter path or rename its folders") from None
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); fix its permissions or remove it") from None


def walk_files(top: Path) -> Iterator[TreeFile]:
    """Every visible file under ``top``, sorted, following directory symlinks at most once per directory.

    ``os.walk(followlinks=True)`` (what torchvision's ImageFolder uses) follows a symlink loop until the path is
    too long, multiplying every image in it (the copies then land in train and test alike); here a directory
    already visited (same device and inode) is skipped. Image-named entries that are not regular files (a FIFO
    would block the reader forever, a device would stream garbage), dangling symlinks and unreadable paths are
    one-line DataErrors naming the entry.
    """
    seen_dirs: set[tuple[int, int]] = set()

    def walk(folder: Path, rel: str) -> Iterator[TreeFile]:
        st = _stat_or_error(folder, image=True)
        assert st is not None
        if (st.st_dev, st.st_ino) in seen_dirs:
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot list {folder} ({exc.strerror or exc}); fix its permissions") from None
        for entry in entries:
            if is_hidden(entry.name):
                continue
            path, sub = Path(entry.path), f"{rel}{entry.name}"
            image = is_image_name(entry.name)
            est = _stat_or_error(path, image)
            if est is None:
                continue
            if stat.S_ISDIR(est.st_mode):
                yield from walk(path, sub + "/")
            elif stat.S_ISREG(est.st_mode):
                yield TreeFile(path, sub, est)
            elif image:
                raise DataError(f"{path} is named like an image but is not a regular file (a FIFO, socket or "
                                "device: reading it would block or stream garbage); remove it")

    yield from walk(top, "")


def fingerprint_tree(path: Path) -> str:
    """Key of a folder tree: every visible file's relative path, size and mtime (symlink-safe walk)."""
    h = hashlib.sha256()
    for f in walk_files(path):
        h.update(f"{f.rel}\0{f.stat.st_size}\0{f.stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def check_gzip(archive: Path) -> None:
    with open(archive, "rb") as fh:
        magic = fh.read(2)
    if magic != GZIP_MAGIC:
        raise DataError(
            f"{archive} is not gzip-compressed (it does not start with the gzip magic bytes); imagefolder "
            "accepts a .tar.gz/.tgz of a class-per-folder tree or the folder itself: re-create it with "
            "`tar czf NAME.tar.gz FOLDER` or pass imagefolder:<folder>"
        )


def extract_once(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` into ``dest`` unless done before.

    Extraction goes to a temporary sibling folder renamed to ``dest`` only when complete, so an
    interrupted run never leaves a ``dest`` that looks finished. Members are filtered with tarfile's
    ``data`` filter (no absolute paths, no escapes out of the folder, no devices).
    """
    if dest.is_dir():
        return dest
    check_gzip(archive)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-partial-", dir=dest.parent))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
    except tarfile.FilterError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive} holds an unsafe member ({exc}); refusing to extract it. Re-create the archive from a "
            "plain folder tree with relative paths"
        ) from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive} is corrupt or truncated, or not a tar archive inside the gzip ({exc}); copy or "
            "download it again (compare its sha256 with the source's), or extract it yourself and pass "
            "imagefolder:<folder>"
        ) from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENAMETOOLONG:
            name = os.path.basename(str(exc.filename or ""))
            raise DataError(
                f"{archive} holds a member whose name is too long for the file system ({name[:60]}...: "
                f"{len(os.fsencode(name))} bytes); rename it in the source tree (255 bytes at most) and re-create "
                "the archive"
            ) from exc
        raise DataError(
            f"could not extract {archive} into {dest.parent} ({exc.strerror or exc}); free disk space there "
            "or set TSB_AIHW_CACHE (or the config key data.root, root= in Python) to another directory"
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():  # a concurrent run may have finished first; only then is losing the race fine
            raise
    return dest


def _visible_subdirs(path: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir() and not is_hidden(e.name))


def _has_images(path: Path) -> bool:
    return any(e.is_file() and is_image_name(e.name) for e in os.scandir(path))


def find_class_root(top: Path) -> Path:
    """Descend through lone wrapper folders (e.g. ``train/``) to the folder whose sub-folders are classes."""
    cur = top
    while True:
        subs = _visible_subdirs(cur)
        if len(subs) == 1 and not _has_images(cur) and not _has_images(subs[0]) and _visible_subdirs(subs[0]):
            cur = subs[0]
            continue
        break
    names = [s.name for s in _visible_subdirs(cur)]
    split_like = [n for n in names if n.lower() in SPLIT_DIR_NAMES]
    if len(split_like) >= 2:
        raise DataError(
            f"{cur} holds split folders ({', '.join(split_like)}), not class folders; imagefolder makes its "
            "own seeded 70/10/20 split of one tree: pass imagefolder:<path to one of them> (extract the "
            "archive first)"
        )
    return cur
