"""DataLoader with its own seeded generator: the same seed gives the same batches, whatever else ran."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from tsb_aihw.errors import DataError


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling (and worker seeds) come from ``torch.Generator().manual_seed(seed)``.

    Two loaders built with the same arguments yield the same sequence of batches, epoch after epoch,
    independent of torch's global RNG (augmentation inside ``num_workers=0`` still uses the global RNG).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}; pass e.g. 128")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise DataError(f"num_workers must be an integer >= 0, got {num_workers!r}; 0 loads in-process")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise DataError("cannot build a loader over an empty dataset; check the dataset name, split and path")
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
