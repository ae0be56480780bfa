"""A recipe's keys as its config wrote them (defaults spelled out) survive what code does to the config around it:
``dataclasses.replace`` of the config and of its sections (sweep presets, per-chip block overrides), copies, the
pickles cell workers get, and re-checking; a field changed in code is never dropped from the keys."""
from __future__ import annotations

import copy
import dataclasses
import pickle

from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import keyed_tree, study_config_from_dict
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.schema import check, given_tree

WRITTEN = {"optimizer": "sgd", "lr": 0.05, "schedule": "wsd"}  # sgd and 0.05 are TrainRecipe's defaults


def _cfg():
    return study_config_from_dict({"backbone": {"recipe": dict(WRITTEN)}, "block": {"recipe": {"augment": "none"}}})


def test_replacing_the_config_or_a_section_keeps_the_recipe_as_written() -> None:
    cfg = _cfg()
    keys = checkpoint_keys(cfg, 0.1)
    variants = [dataclasses.replace(cfg, preset_overrides={"noise.sigma": 0.2}),  # as config.sigma_configs does
                dataclasses.replace(cfg, block=dataclasses.replace(cfg.block, k=4)),  # as a block override does
                dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone)),
                copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg))]
    for other in variants:
        assert keyed_tree(other)["backbone"]["recipe"] == WRITTEN
        assert other.to_dict()["block"]["recipe"] == {"augment": "none"}
    assert checkpoint_keys(variants[0], 0.1) == keys and checkpoint_keys(variants[3], 0.1) == keys
    check(cfg)  # re-validating (what validate() does after code set values) keeps them too
    assert keyed_tree(cfg)["backbone"]["recipe"] == WRITTEN


def test_a_field_changed_in_code_is_keyed_beside_the_written_ones() -> None:
    recipe = _cfg().backbone.recipe
    assert recipe is not None
    rebuilt = dataclasses.replace(recipe, lr=0.1)  # a new value: keyed by what differs from the defaults
    assert given_tree(rebuilt) == {k: v for k, v in {**WRITTEN, "lr": 0.1}.items() if k != "optimizer"}
    assert given_tree(TrainRecipe()) == {}
