"""``recipe`` is a :class:`TrainRecipe` in the config tree, checked at load, and keyed exactly as before it was typed:
the keys its config gave, defaults spelled out included (checkpoint keys, store identities and results' configs of
every committed run and of runs in progress stay the same, so ``--models-from`` and resuming keep working)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.adopt import find_trained
from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import StudyConfig, config_from, keyed_tree, read_config_file, study_config_from_dict
from tsb_aihw.pipeline.frontier import FrontierConfig, budget_config, frontier_identity
from tsb_aihw.pipeline.study import study_identity
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.io import json_fingerprint
from tsb_aihw.utils.store import comparable_identity, key_fingerprint

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT.parent / "shared/data/cifar10-train-jpeg.tar.gz"
needs_archive = pytest.mark.skipif(not ARCHIVE.is_file(), reason="the offline CIFAR-10 archive is not here")
#: the frontier config a long run was started with at 286a03b (recipe {optimizer: sgd, ...} spelled out)
FIELD = "configs/frontier/cifar10-vgg8-w0.5-sigma0.2.yaml"


def test_a_recipe_is_a_train_recipe_checked_at_load() -> None:
    cfg = study_config_from_dict({"backbone": {"recipe": {"lr": 0.1, "schedule": "cosine"}},
                                  "block": {"recipe": {"augment": "none"}}})
    assert cfg.backbone.recipe == TrainRecipe(lr=0.1, schedule="cosine")
    assert cfg.block.recipe == TrainRecipe(augment="none") and StudyConfig().backbone.recipe is None
    for recipe, match in (({"lrr": 0.1}, r"unknown key 'backbone.recipe.lrr' .*did you mean 'backbone.recipe.lr'"),
                          ({"lr": "fast"}, r"backbone.recipe.lr = 'fast' has the wrong type"),
                          ({"lr": -1}, r"backbone.recipe: recipe lr must be in"),
                          ({"optimizer": "adam"}, r"backbone.recipe: recipe nesterov=true needs optimizer 'sgd'"),
                          ("sgd", r"backbone.recipe must be a mapping")):
        with pytest.raises(ConfigError, match=match) as err:
            study_config_from_dict({"backbone": {"recipe": recipe}}, "cfg.yaml")
        assert str(err.value).startswith("cfg.yaml: ") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"unknown key 'block.recipe.x'"):
        study_config_from_dict({"block": {"recipe": {"x": 1}}})
    with pytest.raises(ConfigError, match=r"^backbone.recipe.lr = .* has the wrong type"):  # a CLI override too
        config_from(StudyConfig, {}, "", {"backbone.recipe.lr": "fast"})


def test_a_recipe_is_keyed_as_written() -> None:
    """A key written at its default stays in the keys (as when the recipe was a plain mapping); an empty recipe
    is keyed apart from none; a recipe made in code is keyed by its non-default fields."""
    written = {"optimizer": "sgd", "lr": 0.05, "schedule": "wsd"}  # sgd and 0.05 are TrainRecipe's defaults
    cfg = study_config_from_dict({"backbone": {"recipe": written}})
    assert keyed_tree(cfg)["backbone"]["recipe"] == written == cfg.to_dict()["backbone"]["recipe"]
    assert study_config_from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # what a cell worker rebuilds
    assert keyed_tree(study_config_from_dict({"backbone": {"recipe": {}}}))["backbone"] == {"recipe": {}}
    assert "backbone" not in keyed_tree(StudyConfig()) and StudyConfig().to_dict()["backbone"]["recipe"] is None
    cfg.backbone.recipe = dataclasses.replace(TrainRecipe(), lr=0.1)
    assert keyed_tree(cfg.validate())["backbone"]["recipe"] == {"lr": 0.1}


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "results").rglob("*.json")
                                        if p.name in ("results.json", "sweep.json")))
def test_committed_results_keep_their_recipe_as_written(path: str) -> None:
    config = json.loads((ROOT / path).read_text())["config"]
    cfg = study_config_from_dict(config, path)
    for part in ("backbone", "block"):
        assert cfg.to_dict()[part]["recipe"] == config[part].get("recipe")
        if config[part].get("recipe") is not None:
            assert keyed_tree(cfg)[part]["recipe"] == config[part]["recipe"]


@needs_archive
def test_the_field_frontier_keeps_its_keys_and_identity(monkeypatch) -> None:
    """The fingerprints the code before the typed recipe (1a3ff84) gives this config's trained backbones (its
    extra_baselines and tsb_full_bn, which that code lacks, are in neither): the (b) trained then is adopted by
    this code. The store and the blocks are keyed by the 2-epoch cosine block the config took after (b) was
    trained (2026-12-08). The recipe enters them exactly as the YAML spells it."""
    monkeypatch.chdir(ROOT)
    raw = read_config_file(FIELD)
    cfg = config_from(FrontierConfig, raw, FIELD)
    identity = frontier_identity(cfg)  # the archive's place is recorded, not compared (a clone elsewhere resumes)
    assert identity["inputs"]["data"]["path"] == str((ROOT / "../shared/data/cifar10-train-jpeg.tar.gz").resolve())
    assert json_fingerprint(comparable_identity(identity)) == "97fae394b7a30c1b"  # 14f170f1241589dd with 5 block epochs
    study = budget_config(cfg, 0.1)
    keys = checkpoint_keys(study, 0.1555256740673952)
    assert key_fingerprint(keys["backbone_full"]) == "a3ed75d3c32a2509"
    assert key_fingerprint(keys["backbone_early-3ep"]) == "f905421943f644a5"
    assert key_fingerprint(keys["block_clean-3ep"]) == "4728bd1d53bd9862"  # 16afc4f3b7d28111 with 5 block epochs
    assert keys["backbone_full"]["backbone"]["recipe"] == raw["backbone"]["recipe"]
    assert study_identity(study)["config"]["backbone"]["recipe"] == raw["backbone"]["recipe"]


@needs_archive
def test_models_from_a_committed_study_still_finds_its_backbones(monkeypatch) -> None:
    """The frontier config names results/cifar10-vgg8-sigma0.2 for --models-from: its (b) and 5-epoch backbone
    are adopted (the export predates recorded keys, so the key comes from its results.json config)."""
    monkeypatch.chdir(ROOT)
    path = "configs/frontier/cifar10-vgg8-sigma0.2.yaml"
    study = budget_config(config_from(FrontierConfig, read_config_file(path), path), 0.2)
    keys = checkpoint_keys(study, 0.1555256740673952)
    assert key_fingerprint(keys["backbone_full"]) == "99d508933234f27b"  # as at 286a03b
    for file in ("backbone_full", "backbone_early-5ep"):
        found = find_trained("results/cifar10-vgg8-sigma0.2", file, keys[file])
        assert not isinstance(found, str), found
        assert found.fingerprint == key_fingerprint(keys[file])
