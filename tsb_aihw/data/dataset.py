"""An in-memory image dataset: one tensor of all images, indexed per item (fast, picklable for workers)."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from tsb_aihw.data.info import DatasetInfo


class TensorImageDataset(Dataset):
    """``(image, label)`` pairs from a tensor held in memory.

    Without ``transform`` the images are stored already normalised, so ``__getitem__`` is one index. With
    ``transform`` (the augmented train split) raw pixels are stored and transformed per item; use
    :meth:`as_tensors` for the normalised, un-augmented images of any split.

    Attributes:
        images: ``[N, C, H, W]`` normalised float32, or raw pixels (uint8) when ``transform`` is set.
        targets: ``[N]`` int64 class indices.
        indices: Positions of these samples in the source pool (official split or whole pool), for
            reproducibility checks and to report exactly which images were used.
        info: The split's :class:`DatasetInfo`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        info: DatasetInfo,
        indices: np.ndarray,
        transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> None:
        if len(images) != len(targets) or len(images) != len(indices):
            raise ValueError(
                f"lengths differ: images {len(images)}, targets {len(targets)}, indices {len(indices)}"
            )
        self.images = images
        self.targets = targets.to(torch.int64)
        self.indices = np.asarray(indices)
        self.info = info
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images, normalised and never augmented, and their labels (e.g. for BN statistics or plots)."""
        if self.transform is None:
            return self.images, self.targets
        from tsb_aihw.data.transforms import normalise_batch

        return normalise_batch(self.images, self.info.mean, self.info.std), self.targets

    def __repr__(self) -> str:
        i = self.info
        return (
            f"{type(self).__name__}({i.name!r}, split={i.split!r}, size={i.size}, "
            f"shape={(i.in_channels, *i.image_size)}, classes={i.num_classes}, augment={i.augment})"
        )
