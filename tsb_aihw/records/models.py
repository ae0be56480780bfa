"""``models.json``: the index of an exported study's trained models (``results/<study>/``)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tsb_aihw.models.registry import get_model
from tsb_aihw.records.base import DatasetRecord, Record
from tsb_aihw.records.training import TrainingMeta
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.schema import spec


@dataclass(frozen=True, kw_only=True)
class ModelArgs(Record):
    """``get_model``'s keyword arguments for a backbone sized for its dataset (results.json's ``model_args``): an
    exported state dict is rebuilt from them without the data."""

    name: str
    num_classes: int = spec(lo=1)
    in_channels: int = spec(lo=1)
    width: float = spec(lo=0.0, lo_open=True)
    input_size: int = spec(lo=1)
    fc_init: str | None = spec(None, omit_none=True)  # written only when the config sets it

    def build(self) -> nn.Module:
        """A fresh model of these arguments."""
        return get_model(**self.to_dict())


@dataclass(frozen=True, kw_only=True)
class BlockArgs(Record):
    """``insert_tsb``'s arguments for an exported block: rebuild its model with ``insert_tsb(model, **tsb_block)``."""

    k: int = spec(lo=1)  # the resolved k, not "auto"
    where: str
    residual: bool
    bias: bool | None = spec(None, omit_none=True)  # written only for a block with a bias column


@dataclass(frozen=True, kw_only=True)
class ExportedModel(Record):
    """One exported state dict: how to rebuild its model and what it is."""

    file: str
    checkpoint: str
    model: ModelArgs
    tsb_block: BlockArgs | None  # when the file holds a block
    base: str | None  # a block's backbone file (the block file holds only the block's tensors)
    meta: TrainingMeta
    # what it was trained for (``models_from`` takes it only for the same key); exports older than keys lack it
    key: JsonObject | None = spec(None, omit_none=True)


@dataclass(frozen=True, kw_only=True)
class ModelIndex(Record):
    """Every model of one exported study."""

    how_to_load: str
    dataset: DatasetRecord | None
    models: list[ExportedModel]
