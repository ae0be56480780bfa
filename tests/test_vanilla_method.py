"""Method ``vanilla`` (issue 31, item 2): (b)'s training at σ = 0, programmed one-shot, the baseline of the
``vanilla_baseline`` reading of the paper's > 20x; one model for every sigma (its key holds noise 0)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_study

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import study_config_from_dict
from tsb_aihw.pipeline.definitions import train_images_from_note
from tsb_aihw.pipeline.methods import ALL_METHODS, METHODS
from tsb_aihw.pipeline.study import run_study
from tsb_aihw.records import ClaimsByDefinition, StudyResult, load_record, read_record

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vanilla_is_opt_in_and_one_model_for_every_sigma() -> None:
    assert "vanilla" in ALL_METHODS and "vanilla" not in METHODS  # one more backbone: only where named
    cfg = study_config_from_dict(tiny_study(methods=["full_noise_injection", "tsb", "vanilla"]))
    at_01, at_02 = checkpoint_keys(cfg, 0.1), checkpoint_keys(cfg, 0.2)
    assert at_01["backbone_vanilla"] == at_02["backbone_vanilla"] and at_01["backbone_vanilla"]["noise_std"] == 0.0
    assert at_01["backbone_full"] != at_02["backbone_full"]


def test_a_study_with_vanilla_scores_the_vanilla_definition(tmp_path: Path) -> None:
    cfg = study_config_from_dict(tiny_study(methods=["full_noise_injection", "tsb", "vanilla"]))
    run_study(cfg, tmp_path / "s", progress=False)
    res = read_record(StudyResult, next((tmp_path / "s").rglob("results.json")))
    v = res.methods["vanilla"]
    assert v.backbone == "vanilla" and v.clean_accuracy is not None and len(v.per_chip) == cfg.chips
    assert res.training["backbone_vanilla"].noise_std == 0.0
    assert v.per_chip != res.methods["full_noise_injection"].per_chip  # another network on the same chips
    claims = load_record(ClaimsByDefinition, res.claims.to_dict()["claims_by_definition"], "claims_by_definition")
    claim = claims.definitions["vanilla_baseline"]
    assert claim.available and claim.baseline_reference == v.clean_accuracy


def test_train_images_follow_the_pool_fractions_in_the_note() -> None:
    assert train_images_from_note("seeded stratified 70/10/20 split of the 50,000 images (seed 0)") == 35_000
    assert train_images_from_note("seeded stratified 80/10/10 split of the 50,000 images (seed 0)") == 40_000
    assert train_images_from_note("the official test split") is None


def test_a_frontier_adds_vanilla_as_a_baseline_without_changing_its_store() -> None:
    from tsb_aihw.pipeline.config import config_from
    from tsb_aihw.pipeline.frontier import FrontierConfig, budget_config, frontier_identity

    plain = config_from(FrontierConfig, tiny_study() | {"budgets": [0.5, 1.0]}, "t")
    more = config_from(FrontierConfig, tiny_study() | {"budgets": [0.5, 1.0], "extra_baselines": ["vanilla"]}, "t")
    assert "vanilla" in budget_config(more, 0.5).methods and "vanilla" not in budget_config(plain, 0.5).methods
    assert frontier_identity(more) == frontier_identity(plain)  # a baseline only adds cells
    with pytest.raises(ConfigError, match="optional baseline"):
        config_from(FrontierConfig, tiny_study() | {"extra_baselines": ["tsb"]}, "t")


def test_block_with_bn_on_b_is_a_frontier_variant_of_the_papers_flow() -> None:
    """``tsb_full_bn`` (issue 31): BN re-estimated on (b) through the chip, then the block; under the default flow it
    is tsb_full itself, so it is refused there rather than computed twice."""
    from tsb_aihw.pipeline.config import config_from
    from tsb_aihw.pipeline.frontier import FrontierConfig, budget_config
    from tsb_aihw.pipeline.methods import method_spec

    paper = tiny_study(block={"epochs": 1, "recalibrate_bn": False}) | {"budgets": [0.5],
                                                                         "variants": ["tsb", "tsb_full_bn"]}
    cfg = config_from(FrontierConfig, paper, "t")
    spec = method_spec("tsb_full_bn", budget_config(cfg, 0.5).block)
    assert (spec.backbone, spec.block, spec.verify, spec.bn_recalibration) == ("full", "chip", "tsb", True)
    default_flow = method_spec("tsb_full", study_config_from_dict(tiny_study()).block)
    assert (default_flow.backbone, default_flow.block, default_flow.bn_recalibration) == ("full", "chip", True)
    with pytest.raises(ConfigError, match="tsb_full_bn, which is tsb_full itself"):
        config_from(FrontierConfig, tiny_study() | {"variants": ["tsb", "tsb_full_bn"]}, "t")
