"""The one naming of trained models: each checkpoint a study can train, with the key it depends on.

Training, resuming (``OUT/checkpoints/``) and adopting another run's models (:mod:`tsb_aihw.pipeline.adopt`) all
use it, so a model is taken from elsewhere only where training it here would have been the same job.
"""
from __future__ import annotations

from typing import Any

from tsb_aihw.pipeline.config import StudyConfig, keyed_tree
from tsb_aihw.pipeline.inputs import data_inputs
from tsb_aihw.utils.io import JsonObject


def checkpoint_key(cfg: StudyConfig, noise_std: float, what: str, **extra: Any) -> JsonObject:
    """What a trained model depends on (a backbone's own epoch budget comes in ``extra``, so the early and
    full backbones of studies with other budgets share checkpoints)."""
    c = keyed_tree(cfg)  # a new field at its neutral default keeps every checkpoint
    data = {k: v for k, v in c.get("data", {}).items() if k in ("name", "root", "batch_size", "pool_fractions")}
    content = data_inputs(cfg.data.name).get("data")
    if content is not None:  # a user's image folder: a model trained on other content is another model
        data["content"] = content["sha256"]
    # (b) is the same model whichever way its early backbones are made: the budgets and early_from key only those
    backbone = {k: v for k, v in c.get("backbone", {}).items()
                if k not in ("full_epochs", "early_epochs", "early_from")}
    return {"what": what, "model": c.get("model", {}), "data": data, "backbone": backbone, "seed": cfg.seed,
            "noise_std": noise_std, **extra}  # training sees the device only through its noise std


def checkpoint_keys(cfg: StudyConfig, noise_std: float) -> dict[str, JsonObject]:
    """Every digital model a study can train, by checkpoint file name, with its key: the one naming used to
    train, resume and adopt (``models_from``) them."""
    early, full = cfg.backbone.early_epochs, cfg.backbone.full_epochs
    block = keyed_tree(cfg).get("block", {})
    # an early backbone stopped from (b)'s run is another model than one trained on its own: its key says which
    origin = {"from_stop": {"full_epochs": full}} if cfg.backbone.early_from == "stop" else {}
    return {"backbone_full": checkpoint_key(cfg, noise_std, "backbone_full", epochs=full),
            # (b)'s training without noise: one model for every sigma of a preset (noise_std 0 in its key)
            "backbone_vanilla": checkpoint_key(cfg, 0.0, "backbone_vanilla", epochs=full),
            f"backbone_early-{early}ep": checkpoint_key(cfg, noise_std, "backbone_early", epochs=early, **origin),
            **{f"block_{kind}-{early}ep": checkpoint_key(cfg, noise_std, f"block_{kind}", block=block, noise=noise,
                                                         epochs=early, **origin)
               for kind, noise in (("clean", 0.0), ("generic", noise_std))}}
