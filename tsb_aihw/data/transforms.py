"""Normalisation, resizing and CIFAR augmentation with torchvision transforms (v2, tensor inputs).

Images arrive as whole uint8 (0..255) or float (0..1) batches ``[N, C, H, W]``. Splits that are not
augmented are resized and normalised once, as a batch; the augmented train split keeps raw pixels and
runs crop -> flip -> scale -> normalise per item, so padding is black as in the usual CIFAR recipe.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

# TSB authors' NF_Training code normalises MNIST with mean 0.5 / std 0.5.
HALF_NORM: tuple[tuple[float, ...], tuple[float, ...]] = ((0.5,), (0.5,))
# Per-channel pixel mean and std of the CIFAR-10 training images.
CIFAR10_NORM: tuple[tuple[float, ...], tuple[float, ...]] = (
    (0.4914, 0.4822, 0.4465),
    (0.2470, 0.2435, 0.2616),
)
CIFAR_CROP_PADDING = 4


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1; float stays (already 0..1)."""
    return F.to_dtype(images, torch.float32, scale=True)


def resize_batch(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of a batch; no-op when the size already matches."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = F.resize(images, list(size), interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
    return out.clamp_(0.0, 1.0) if out.is_floating_point() else out


def normalise_batch(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Raw pixels -> float32 ``(x - mean) / std`` per channel, as one contiguous tensor."""
    return F.normalize(to_unit_float(images), list(mean), list(std)).contiguous()


def train_augmentation(size: tuple[int, int], mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Per-item CIFAR augmentation on raw pixels: RandomCrop(size, padding=4) + horizontal flip, normalise.

    Random draws come from torch's global RNG (seeded by ``seed_everything``) or, in DataLoader workers,
    from the per-worker seeds the loader derives from its seeded generator.
    """
    return v2.Compose(
        [
            v2.RandomCrop(list(size), padding=CIFAR_CROP_PADDING),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
