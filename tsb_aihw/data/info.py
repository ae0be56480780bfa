"""What a dataset is: the facts a model, a loader and a results file need, in one frozen record."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tsb_aihw.utils.io import JsonObject

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """Shape, classes and provenance of one split; ``split_note`` is printed next to any accuracy.

    Attributes:
        name: Dataset name as passed to ``get_dataset`` (``imagefolder:<path>`` keeps its path).
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_classes: Number of classes (length of ``classes``).
        in_channels: Image channels (1 for MNIST-like sources, 3 for RGB).
        image_size: ``(H, W)`` of the returned tensors.
        classes: Class names; the target ``i`` is ``classes[i]``.
        size: Number of samples in this split.
        split_note: One sentence saying where the split comes from, e.g. a seeded 70/10/20 split.
        seed: Seed of the split (the same seed always gives the same indices).
        augment: Whether ``__getitem__`` applies random crop + flip (train split of RGB sources only).
        mean: Per-channel normalisation mean (to undo the normalisation for plots).
        std: Per-channel normalisation std.
    """

    name: str
    split: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    classes: tuple[str, ...]
    size: int
    split_note: str
    seed: int = 0
    augment: bool = False
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def to_dict(self) -> JsonObject:
        """JSON-ready dict for results files."""
        return dataclasses.asdict(self)
