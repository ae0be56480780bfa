"""Early backbones as stops of (b)'s own run, wired into the study (issue 34, item 3), and (b) resumable.

``backbone.early_from: stop`` takes the early backbone from (b)'s run at early_epochs / full_epochs of its steps,
annealed; (b)'s key does not change, the early backbone's and its blocks' do; a budget outside (b)'s stable phase
fails before training; an interrupted (b) resumes from ``OUT/train_state`` to the same weights.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_study

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import config_from, study_config_from_dict
from tsb_aihw.pipeline.frontier import FrontierConfig, budget_config
from tsb_aihw.pipeline.methods import method_spec
from tsb_aihw.pipeline.tasks import StudyContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WSD = {"optimizer": "sgd", "lr": 0.05, "schedule": "wsd", "warmup_fraction": 0.1, "decay_fraction": 0.2,
       "augment": "none"}


def stop_study(**backbone: object) -> dict:
    return tiny_study(backbone={"full_epochs": 5, "early_epochs": 1, "recipe": WSD, "early_from": "stop", **backbone},
                      methods=["backbone_early", "full_noise_injection"])


def test_config_checks_and_keys() -> None:
    with pytest.raises(ConfigError, match="early_from: stop .* needs backbone.recipe.schedule: wsd"):
        study_config_from_dict(tiny_study(backbone={"early_from": "stop"}))
    with pytest.raises(ConfigError, match="backbone.stops .* but early_from is separate"):
        study_config_from_dict(tiny_study(backbone={"recipe": WSD, "stops": [0.4]}))
    with pytest.raises(ConfigError, match="early_from"):
        study_config_from_dict(tiny_study(backbone={"early_from": "later"}))
    separate = study_config_from_dict(tiny_study(backbone={"full_epochs": 5, "early_epochs": 1, "recipe": WSD}))
    stop = study_config_from_dict(stop_study())
    more = study_config_from_dict(stop_study(stops=[0.4, 0.6]))
    ks, kt, km = (checkpoint_keys(c, 0.1) for c in (separate, stop, more))
    assert ks["backbone_full"] == kt["backbone_full"] == km["backbone_full"]  # (b) is one model either way
    assert ks["backbone_early-1ep"] != kt["backbone_early-1ep"] == km["backbone_early-1ep"]
    assert ks["block_clean-1ep"] != kt["block_clean-1ep"]  # a block on another backbone is another block
    # a frontier's (b) keeps every budget's stop, the full budget excepted
    front = config_from(FrontierConfig, stop_study() | {"budgets": [0.2, 0.6, 1.0]}, "t")
    assert budget_config(front, 0.2).backbone.stops == [0.2, 0.6]


def test_stop_outside_the_stable_phase_fails_before_training(tmp_path: Path) -> None:
    cfg = study_config_from_dict(stop_study(recipe={**WSD, "warmup_fraction": 0.5}))
    ctx = StudyContext(cfg, tmp_path / "s", progress=False)
    with pytest.raises(ConfigError, match="early budgets \\[0.2\\].*outside the stable phase"):
        ctx.models.prepare([method_spec("backbone_early", cfg.block)])
    assert not (tmp_path / "s" / "checkpoints" / "backbone_full.pt").exists()


def test_early_backbone_is_b_stopped_and_annealed(tmp_path: Path) -> None:
    cfg = study_config_from_dict(stop_study())
    ctx = StudyContext(cfg, tmp_path / "s", progress=False)
    ctx.models.prepare([method_spec("backbone_early", cfg.block)])
    states = tmp_path / "s" / "train_state" / "backbone_full"
    assert (states / "stop-0.2.pt").is_file() and not (states / "resume.pt").exists()
    meta_b, meta_e = ctx.models.meta["backbone_full"], ctx.models.meta["backbone_early"]
    steps = len(ctx.data.train)
    assert meta_e.stop is not None
    assert meta_e.stop["steps"] == steps and meta_e.stop["total_steps"] == 5 * steps  # 1 of 5 epochs
    assert 0 < meta_e.train_time_s < meta_b.train_time_s
    early = ctx.models.backbone("early").state_dict()
    assert any(not torch.equal(v, ctx.models.backbone("full").state_dict()[k]) for k, v in early.items())
    # a re-run loads both, and the early backbone it would anneal again is the same
    again = StudyContext(cfg, tmp_path / "s", progress=False)
    assert all(torch.equal(v, again.models.backbone("early").state_dict()[k]) for k, v in early.items())
    # without (b)'s stop (another run's (b), trained without it) the early backbone names what to do
    (tmp_path / "s" / "checkpoints" / "backbone_early-1ep.pt").unlink()
    (states / "stop-0.2.pt").unlink()
    with pytest.raises(ConfigError, match="trained without it; add 0.2 to backbone.stops"):
        StudyContext(cfg, tmp_path / "s", progress=False).models.backbone("early")


def test_interrupted_b_resumes_to_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tsb_aihw.training.loop as loop

    cfg = study_config_from_dict(stop_study())
    whole = StudyContext(cfg, tmp_path / "whole", progress=False).models.backbone("full").state_dict()

    real, saved = loop.save_state, []

    def save_then_die(state, path):
        out = real(state, path)
        saved.append(path)
        if len(saved) == 3:  # after the stop and two epochs' snapshots: a kill
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(loop, "save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        StudyContext(cfg, tmp_path / "cut", progress=False).models.backbone("full")
    monkeypatch.setattr(loop, "save_state", real)
    assert (tmp_path / "cut" / "train_state" / "backbone_full" / "resume.pt").is_file()
    resumed = StudyContext(cfg, tmp_path / "cut", progress=False).models.backbone("full").state_dict()
    assert all(torch.equal(v, resumed[k]) for k, v in whole.items())


def test_pool_fractions_split_the_archive_and_key_the_models() -> None:
    """``data.pool_fractions`` (issue 34: train on >= 40,000 of the archive's 50,000 images, test on >= 5,000 never
    used for selection): sizes follow the fractions, parts stay disjoint, the note says the split, keys change."""
    from tsb_aihw.pipeline.trained import study_split

    cfg = study_config_from_dict(tiny_study(data={"name": "digits", "batch_size": 64,
                                                  "pool_fractions": [0.8, 0.1, 0.1]}))
    parts = {s: study_split(cfg, s) for s in ("train", "val", "test")}
    n = sum(len(p) for p in parts.values())
    assert [len(parts[s]) for s in ("val", "test")] == [round(0.1 * n)] * 2
    assert len({*parts["train"].indices, *parts["val"].indices, *parts["test"].indices}) == n
    assert "80/10/10 split" in parts["test"].info.split_note
    base = study_config_from_dict(tiny_study())
    assert checkpoint_keys(cfg, 0.1)["backbone_full"] != checkpoint_keys(base, 0.1)["backbone_full"]
    assert "70/10/20 split" in study_split(base, "test").info.split_note  # the default note, unchanged
    for bad, why in (([0.8, 0.1], "three numbers"), ([0.8, 0.15, 0.1], "add up to 1")):
        with pytest.raises(ConfigError, match=f"data.pool_fractions: .*{why}"):
            study_config_from_dict(tiny_study(data={"name": "digits", "pool_fractions": bad}))
    with pytest.raises(ConfigError, match="keeps its official test split"):
        study_config_from_dict(tiny_study(data={"name": "cifar10", "pool_fractions": [0.8, 0.1, 0.1]}))
