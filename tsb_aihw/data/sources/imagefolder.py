"""``imagefolder:<path>``: a class-per-folder image tree, or a .tar.gz of one, decoded once and cached.

Reading walks the tree like torchvision's ``ImageFolder`` (classes = sorted visible sub-folders, images by
extension) but safely: symlink loops are not followed, duplicates are read once, only regular files are
opened, and images are converted to 8-bit RGB by a rule that checks their bit depth (:func:`to_rgb8`).
Decoding tens of thousands of JPEGs takes a while, so the decoded uint8 images are saved as one tensor file
(atomically), keyed by the source's fingerprint and the image size, and later runs load that file instead.

Cache layout under the cache root (``root`` or ``$TSB_AIHW_CACHE`` or ``~/.cache/tsb_aihw``)::

    imagefolder/<stem>-<fingerprint>/extracted/...          (archives only)
    imagefolder/<stem>-<fingerprint>/decoded-<H>x<W>.pt
"""
from __future__ import annotations

import errno
import functools
import io
import os
import stat
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from tsb_aihw.data.cache import cache_root, writable_dir
from tsb_aihw.data.sources import archive as arc
from tsb_aihw.data.sources.base import Pool, RootArg
from tsb_aihw.errors import DataError
from tsb_aihw.utils.io import atomic_write_bytes

CACHE_FORMAT = 2  # 2: bit-depth-aware decoding (16-bit and float images were clipped before)
FOLDER_HINT = (
    "a folder with one sub-folder of images per class (e.g. cat/0001.jpg, dog/0002.jpg), or a .tar.gz of one"
)


def scan_classes(class_root: Path) -> tuple[list[tuple[Path, int]], tuple[str, ...]]:
    """(image path, class index) of every image under ``class_root``, and the class names (sorted).

    Classes are the visible sub-folders; images are found by :func:`archive.walk_files` (symlink-safe, regular
    files only). A file reached twice (a symlinked folder, a hard link) is read once; the same file under two
    classes is an error (one image, two labels). At least two classes, each with an image, are required: with
    one class every prediction is right and a study would report 100%.
    """
    try:
        entries = sorted(os.scandir(class_root), key=lambda e: e.name)
    except OSError as exc:
        raise DataError(f"cannot list {class_root} ({exc.strerror or exc}); pass imagefolder:<path> with "
                        f"{FOLDER_HINT}") from None
    classes = [e.name for e in entries if not arc.is_hidden(e.name) and e.is_dir()]
    samples: list[tuple[Path, int]] = []
    owner: dict[tuple[int, int], tuple[str, Path]] = {}
    empty, repeats = [], 0
    for index, name in enumerate(classes):
        found = 0
        for f in arc.walk_files(class_root / name):
            if not arc.is_image_name(f.path.name):
                continue
            first = owner.get(f.identity)
            if first is not None:
                if first[0] != name:
                    raise DataError(f"{f.path} and {first[1]} are the same file (a symlink or hard link) in two "
                                    f"classes ({first[0]}, {name}); one image cannot have two labels: remove one")
                repeats += 1
                continue
            owner[f.identity] = (name, f.path)
            samples.append((f.path, index))
            found += 1
        if not found:
            empty.append(name)
    if not classes or len(empty) == len(classes):
        has_loose = any(arc.is_image_name(e.name) and e.is_file() for e in entries)
        what = "images lie directly in it, not in class folders" if has_loose else "no class folders with images"
        raise DataError(f"no usable image tree at {class_root}: {what}; imagefolder needs {FOLDER_HINT}")
    if empty:
        raise DataError(f"class folder(s) {', '.join(empty)} in {class_root} hold no images; add images to them "
                        "or remove them (a class without images can never be learned or tested)")
    if len(classes) < 2:
        raise DataError(f"{class_root} has a single class folder ({classes[0]}); a classifier needs at least 2 "
                        f"classes (with one, every prediction is right and accuracy is a meaningless 100%): "
                        f"pass the folder that holds the class folders ({FOLDER_HINT})")
    if repeats:
        warnings.warn(f"{class_root}: {repeats} image(s) reached twice through symlinks or hard links were "
                      "read once", stacklevel=3)
    return samples, tuple(classes)


#: Pillow modes that convert to 8-bit RGB without loss of meaning (alpha is dropped, as torchvision does)
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _bits_per_sample(img: Image.Image) -> int | None:
    tags = getattr(img, "tag_v2", None)
    bits = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    if isinstance(bits, tuple):
        bits = bits[0] if bits else None
    return int(bits) if isinstance(bits, int) else None


def to_rgb8(img: Image.Image, path: Path | str) -> np.ndarray:
    """``img`` as ``[H, W, 3]`` uint8 by a rule that keeps what the pixels mean, or a DataError.

    Pillow's ``convert("RGB")`` clips: a 16-bit image (0..65535) became white, a float image (0..1) black.
    Rules: 8-bit modes convert as usual; 16-bit grey (``I;16*``, or ``I`` from a PNG or a 16-bit TIFF) is
    scaled by 255/65535 and rounded; float grey (``F``) is scaled by 255 and rounded if every value is finite
    and in [0, 1]; anything else (32-bit integers, floats outside [0, 1], other modes) is refused.
    """
    mode = img.mode
    if mode in EIGHT_BIT_MODES:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and (img.format == "PNG" or _bits_per_sample(img) == 16)):
        grey = np.asarray(img).astype(np.float64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise DataError(f"image {path}: 16-bit values outside 0..65535; save it as an 8-bit PNG or JPEG")
        grey = np.rint(grey * (255.0 / 65535.0))
    elif mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise DataError(f"image {path}: float pixels include NaN/inf; save it as an 8-bit PNG or JPEG")
        lo, hi = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise DataError(f"image {path}: float pixels span [{lo:.4g}, {hi:.4g}]; only floats in [0, 1] have a "
                            "defined 8-bit value (x255): rescale it to [0, 1] or save it as an 8-bit PNG or JPEG")
        grey = np.rint(grey * 255.0)
    else:
        bits = _bits_per_sample(img)
        depth = f", {bits} bits per sample" if bits else ""
        raise DataError(f"image {path}: Pillow mode {mode!r}{depth} has no faithful 8-bit RGB form here; save it as "
                        "an 8-bit (or 16-bit grey) PNG or JPEG")
    g = grey.astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def read_image(path: Path) -> np.ndarray:
    """Decode one image file as ``[H, W, 3]`` uint8 (see :func:`to_rgb8`); DataError naming the file."""
    try:
        with open(path, "rb") as fh:
            with Image.open(fh) as img:
                img.load()
                return to_rgb8(img, path)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as exc:
        raise DataError(f"cannot decode image {path} ({exc}); delete or replace that file") from exc


def decode_tree(
    class_root: Path, size: tuple[int, int], desc: str = "decoding"
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """Read every image under ``class_root`` as RGB uint8 ``[N, 3, H, W]`` (resized when not ``size``)."""
    samples, classes = scan_classes(class_root)
    h, w = size
    images = torch.empty((len(samples), 3, h, w), dtype=torch.uint8)
    for i, (path, _) in enumerate(tqdm(samples, desc=desc, unit="img", disable=None, mininterval=2.0)):
        arr = read_image(path)
        if arr.shape[:2] != (h, w):
            arr = np.asarray(F.resize(Image.fromarray(arr, "RGB"), [h, w], antialias=True), dtype=np.uint8)
        images[i] = torch.from_numpy(arr.copy()).permute(2, 0, 1)
    targets = torch.as_tensor([t for _, t in samples], dtype=torch.int64)
    return images, targets, classes


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
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"imagefolder path {path} does not exist; pass imagefolder:<path> with "
                        f"{FOLDER_HINT}") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise DataError(f"imagefolder path {str(path)[:60]}... is too long for the file system "
                            f"({len(os.fsencode(path))} bytes); move the data to a shorter path") from None
        raise DataError(f"cannot open imagefolder path {path} ({exc.strerror or exc}); pass imagefolder:<path> "
                        f"with {FOLDER_HINT}") from None
    if stat.S_ISDIR(st.st_mode):
        fp, stem = arc.fingerprint_tree(path), path.name
    elif arc.is_archive(path) and stat.S_ISREG(st.st_mode):
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
