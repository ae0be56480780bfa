"""Datasets for tsb_aihw: named sources, seeded train/val/test splits, transforms and seeded loaders.

``get_dataset(name, split)`` returns an in-memory dataset of normalised tensors with an ``info``
(:class:`DatasetInfo`) that results files print next to an accuracy; ``make_loader`` wraps it in a
DataLoader whose shuffling is reproducible from its seed.
"""
from tsb_aihw.data.batch_augment import BatchCropFlip
from tsb_aihw.data.dataset import TensorImageDataset
from tsb_aihw.data.info import SPLITS, DatasetInfo
from tsb_aihw.data.loader import make_loader
from tsb_aihw.data.registry import get_dataset, list_datasets

__all__ = [
    "BatchCropFlip", "DatasetInfo", "SPLITS", "TensorImageDataset", "get_dataset", "list_datasets", "make_loader",
]
