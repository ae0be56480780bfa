"""``get_dataset``: name -> source -> seeded split -> resized, normalised in-memory dataset."""
from __future__ import annotations

import difflib
import functools
import os
from typing import Optional, Sequence, Union

import numpy as np
import torch

from tsb_aihw.data.dataset import TensorImageDataset
from tsb_aihw.data.info import SPLITS, DatasetInfo
from tsb_aihw.data.sources import bundled, imagefolder, torchvision_sets
from tsb_aihw.data.sources.base import Pool, Source
from tsb_aihw.data.splits import POOL_FRACTIONS, check_pool_fractions, check_seed, holdout_split, pool_split
from tsb_aihw.data.transforms import (
    CIFAR10_NORM,
    HALF_NORM,
    normalise_batch,
    resize_batch,
    train_augmentation,
)
from tsb_aihw.errors import DataError

IMAGEFOLDER_PREFIX = "imagefolder:"
IMAGEFOLDER_FORM = "imagefolder:<path>"

SOURCES: dict[str, Source] = {
    "digits": Source("digits", 1, (8, 8), *HALF_NORM, official_test=False, load=bundled.load_digits),
    "mnist5k": Source("mnist5k", 1, (32, 32), *HALF_NORM, official_test=False, load=bundled.load_mnist5k),
    "mnist": Source("mnist", 1, (32, 32), *HALF_NORM, official_test=True, load=torchvision_sets.load_mnist),
    "cifar10": Source(
        "cifar10", 3, (32, 32), *CIFAR10_NORM, official_test=True, load=torchvision_sets.load_cifar10
    ),
}


def list_datasets() -> list[str]:
    """Valid dataset names, sorted, followed by the ``imagefolder:<path>`` form (a pattern, not a name)."""
    return sorted(SOURCES) + [IMAGEFOLDER_FORM]


def _valid_names() -> str:
    return f"{', '.join(sorted(SOURCES))}, or {IMAGEFOLDER_FORM} ({imagefolder.FOLDER_HINT})"


def resolve_source(name: str) -> tuple[str, Source]:
    """(canonical name, source) for a dataset name; DataError listing the valid names otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}; valid: {_valid_names()}")
    key = name.strip()
    if key.lower().startswith(IMAGEFOLDER_PREFIX):
        path = key[len(IMAGEFOLDER_PREFIX):].strip()
        if not path:
            raise DataError(f"{key!r} lacks a path; pass {IMAGEFOLDER_FORM} with {imagefolder.FOLDER_HINT}")
        src = Source(
            f"{IMAGEFOLDER_PREFIX}{path}", 3, (32, 32), *CIFAR10_NORM, official_test=False,
            load=functools.partial(imagefolder.load_imagefolder, path),
        )
        return src.name, src
    low = key.lower()
    if low in SOURCES:
        return low, SOURCES[low]
    if low == IMAGEFOLDER_PREFIX.rstrip(":"):
        raise DataError(f"'imagefolder' needs a path: pass {IMAGEFOLDER_FORM} with {imagefolder.FOLDER_HINT}")
    close = difflib.get_close_matches(low, SOURCES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"unknown dataset {name!r}{hint}; valid names: {_valid_names()}")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def _check_size(image_size: Union[int, tuple[int, int], None], default: tuple[int, int]) -> tuple[int, int]:
    if image_size is None:
        return default
    if isinstance(image_size, int):
        size: tuple = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)):
        size = tuple(image_size)
    else:
        size = ()
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise DataError(f"image_size must be a positive int or a pair (H, W) of them, got {image_size!r}")
    return size


def _resolve_augment(augment: Optional[bool], source: Source, split: str) -> bool:
    if augment is not None and not isinstance(augment, bool):
        raise DataError(f"augment must be None, True or False, got {augment!r}")
    if augment and source.in_channels != 3:
        raise DataError(
            f"augment=True asks for CIFAR crop+flip augmentation, which is for 3-channel images; "
            f"{source.name} has 1 channel (flipped digits change meaning): pass augment=None or False"
        )
    if augment is False:
        return False
    return split == "train" and source.in_channels == 3  # never on val/test


def _select(pool: Pool, source: Source, split: str, seed: int,
            fractions: tuple[float, float, float]) -> tuple[np.ndarray, str]:
    """Indices of ``split`` in ``pool`` and the one-sentence note saying where they come from."""
    if not source.official_test:
        sp = pool_split(pool.targets.numpy(), seed, what=pool.description, fractions=fractions)
        idx = sp.parts[split]
        ratio = "/".join(f"{100 * f:g}" for f in fractions)
        note = f"seeded {sp.kind} {ratio} split of {pool.description} (seed {seed})"
        return idx, f"{note}; {split} part: {len(idx):,} images"
    if split == "test":
        return np.arange(len(pool)), pool.description
    sp = holdout_split(pool.targets.numpy(), seed, what=pool.description)
    idx = sp.parts[split]
    if split == "val":
        note = f"seeded {sp.kind} 10% of {pool.description} held out as validation (seed {seed})"
    else:
        note = f"{pool.description} minus a seeded {sp.kind} 10% validation hold-out (seed {seed})"
    return idx, f"{note}; {len(idx):,} images"


def pool_fractions_for(name: str, fractions: Sequence[float]) -> tuple[float, float, float]:
    """``fractions`` checked as the train/val/test split of ``name``'s pool: a source with an official test split
    (``mnist``, ``cifar10``) has no pool to split."""
    canonical, source = resolve_source(name)
    if source.official_test:
        raise DataError(f"pool_fractions {list(fractions)} split a pool without an official test split, but "
                        f"{canonical} keeps its official test split; drop pool_fractions")
    return check_pool_fractions(fractions)


def get_dataset(
    name: str,
    split: str,
    root: Optional[Union[str, os.PathLike]] = None,
    download: bool = False,
    *,
    seed: int = 0,
    augment: Optional[bool] = None,
    image_size: Union[int, tuple[int, int], None] = None,
    pool_fractions: Optional[Sequence[float]] = None,
) -> TensorImageDataset:
    """One split of a named dataset, as normalised ``[C, H, W]`` float32 tensors with integer labels.

    Args:
        name: ``digits``, ``mnist5k``, ``mnist``, ``cifar10`` or ``imagefolder:<folder or .tar.gz>``.
        split: ``train``, ``val`` or ``test``. Sources without an official test split get a seeded 70/10/20
            split of their pool; ``mnist``/``cifar10`` keep the official test split and hold out a seeded
            10% of the official train split as ``val``.
        root: For ``mnist``/``cifar10`` the torchvision data directory (default ``<cache>/torchvision``); for
            ``imagefolder`` the cache root for extraction and decoded images (default ``$TSB_AIHW_CACHE`` or
            ``~/.cache/tsb_aihw``). Ignored by the bundled ``digits``/``mnist5k``.
        download: Let torchvision download ``mnist``/``cifar10`` when missing (off by default).
        seed: Split seed; the same seed always gives the same indices.
        augment: ``None`` = CIFAR crop+flip on the train split of 3-channel sources; ``False`` = never;
            ``True`` = on the train split (error on 1-channel sources). Never applied to val/test.
        image_size: Output ``(H, W)`` (or one int); defaults: digits 8x8, everything else 32x32.
        pool_fractions: Train/val/test fractions of a source without an official test split (default
            70/10/20; e.g. ``[0.8, 0.1, 0.1]`` trains on 40,000 of the CIFAR-10 archive's 50,000 images).
            An error for ``mnist``/``cifar10``, whose test split is the official one.

    Returns:
        A :class:`TensorImageDataset` whose ``info`` is the split's :class:`DatasetInfo`.

    Raises:
        DataError: unknown name or split, missing or corrupt files, download impossible, bad arguments.
    """
    canonical, source = resolve_source(name)
    split = _check_split(split)
    seed = check_seed(seed)
    size = _check_size(image_size, source.default_size)
    augment_on = _resolve_augment(augment, source, split)
    fractions = POOL_FRACTIONS if pool_fractions is None else pool_fractions_for(name, pool_fractions)

    part = "all" if not source.official_test else ("test" if split == "test" else "train")
    pool = source.load(part, root, bool(download), size)
    idx, note = _select(pool, source, split, seed, fractions)

    images = resize_batch(pool.images[torch.from_numpy(idx)], size)
    if augment_on:
        stored, transform = images.contiguous(), train_augmentation(size, source.mean, source.std)
    else:
        stored, transform = normalise_batch(images, source.mean, source.std), None
    info = DatasetInfo(
        name=canonical, split=split, num_classes=len(pool.classes), in_channels=source.in_channels,
        image_size=size, classes=pool.classes, size=len(idx), split_note=note, seed=seed,
        augment=augment_on, mean=source.mean, std=source.std,
    )
    return TensorImageDataset(stored, pool.targets[torch.from_numpy(idx)], info, idx, transform)
