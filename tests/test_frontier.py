"""The speed-up vs gap-improvement frontier and the TSB variants it compares (issue: where TSB's claims hold)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tsb_aihw.cli.main import main
from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import config_from, study_config_from_dict
from tsb_aihw.pipeline.frontier import FrontierConfig, budget_config, early_epochs

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_budgets_set_the_early_backbone_and_are_checked() -> None:
    cfg = config_from(FrontierConfig, tiny_study(backbone={"full_epochs": 10}) | {"budgets": [0.05, 0.5, 1.0]}, "t")
    assert [early_epochs(cfg, b) for b in cfg.budgets] == [1, 5, 10]
    sub = budget_config(cfg, 0.5)
    assert sub.backbone.early_epochs == 5 and sub.backbone.full_epochs == 10
    assert sub.methods[-2:] == ["tsb", "tsb_full"] and "full_noise_injection" in sub.methods
    assert sub.selective.fraction_multipliers == [1.0, 10.0]  # SWIM-style selection at TSB's fraction and 10x
    with pytest.raises(ConfigError, match="repeated early epochs"):
        config_from(FrontierConfig, tiny_study(backbone={"full_epochs": 10}) | {"budgets": [0.5, 0.51]}, "t")
    with pytest.raises(ConfigError, match="budgets\\[0\\] = 0.0 is out of range"):
        config_from(FrontierConfig, tiny_study() | {"budgets": [0.0]}, "t")
    with pytest.raises(ConfigError, match="unknown TSB variant"):
        config_from(FrontierConfig, tiny_study() | {"variants": ["tsb_magic"]}, "t")
    # tsb_bn is tsb itself under the default flow: one line, before anything is trained; the paper's flow takes it
    with pytest.raises(ConfigError, match="variants has tsb_bn, which is tsb itself while block.recalibrate_bn"):
        config_from(FrontierConfig, tiny_study() | {"variants": ["tsb", "tsb_bn"]}, "t")
    with pytest.raises(ConfigError, match="methods has tsb_bn, which is tsb itself"):
        study_config_from_dict(tiny_study(methods=["tsb", "tsb_bn"]))
    paper = tiny_study(block={"epochs": 1, "recalibrate_bn": False}) | {"variants": ["tsb", "tsb_bn"], "budgets": [1.0]}
    assert config_from(FrontierConfig, paper, "t").variants == ["tsb", "tsb_bn"]


def test_bn_is_re_estimated_through_the_chip_before_the_block_by_default(monkeypatch, tmp_path: Path) -> None:
    """The default flow (block.recalibrate_bn): tsb and tsb_full re-estimate BN through the programmed chip first and
    train the block on a twin that carries it; with recalibrate_bn: false (the paper's flow) tsb trains its block on
    the trained BN, and tsb_bn is the BN-first flow."""
    import tsb_aihw.pipeline.deploy as deploy
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.methods import method_spec
    from tsb_aihw.pipeline.tasks import StudyContext

    calls: list[tuple] = []
    real_bn, real_block = deploy.recalibrate_bn, deploy.train_block_for_chip

    def bn(model, *a, **k):
        calls.append(("bn",))
        return real_bn(model, *a, **k)

    def block(models, chip, at, write=0, backbone="early", with_bn=False, block=None):
        calls.append(("block", backbone, with_bn))
        return real_block(models, chip, at, write, backbone, with_bn, block)

    monkeypatch.setattr(deploy, "recalibrate_bn", bn)
    monkeypatch.setattr(deploy, "train_block_for_chip", block)

    def run(cfg, name: str) -> tuple[list[tuple], "deploy.CellResult"]:
        calls.clear()
        ctx = StudyContext(cfg, tmp_path / "s", progress=False)
        cell = deploy.deploy_cell(method_spec(name, cfg.block), 0, ctx.models, ctx.preset)
        return list(calls), cell

    default = study_config_from_dict(tiny_study(methods=["tsb", "tsb_full"]))
    paper = study_config_from_dict(tiny_study(methods=["tsb", "tsb_bn"], block={"epochs": 1, "recalibrate_bn": False}))
    assert default.block.recalibrate_bn and not paper.block.recalibrate_bn
    (c_tsb, tsb), (c_full, full) = run(default, "tsb"), run(default, "tsb_full")
    assert c_tsb == [("bn",), ("block", "early", True)] and c_full == [("bn",), ("block", "full", True)]
    (c_paper, plain), (c_bn, bn_cell) = run(paper, "tsb"), run(paper, "tsb_bn")
    assert c_paper == [("block", "early", False)] and c_bn == [("bn",), ("block", "early", True)]
    assert tsb.acc == bn_cell.acc and tsb.chip == plain.chip != full.chip  # the same chip, the same BN-first flow
    assert min(c.block_time_s for c in (tsb, full, plain, bn_cell)) > 0


@pytest.mark.slow
def test_frontier_quick_writes_the_frontier_and_reuses_budget_free_cells(tmp_path: Path, capsys) -> None:
    out = tmp_path / "frontier"
    assert main(["frontier", "--quick", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "frontier.json").read_text())
    assert set(res["curves"]) == {"tsb", "tsb_full"}
    for name, pts in res["curves"].items():
        assert [p["budget"] for p in pts] == [0.34, 1.0]
        # tsb_full's block sits on (b): its backbone is the full one at every budget
        assert [p["early_epochs"] for p in pts] == ([3, 3] if name == "tsb_full" else [1, 3])
        assert {p["backbone"] for p in pts} == {"full" if name == "tsb_full" else "early"}
    full = res["curves"]["tsb_full"]
    assert all(p["speedup"] < 1 for p in full)  # the block on (b)'s backbone only adds training time
    assert res["curves"]["tsb"][0]["speedup"] > res["curves"]["tsb"][1]["speedup"]  # a smaller budget is faster
    assert {p["method"] for p in res["baselines"]} >= {"full_verify", "bn_recalibration"}
    assert set(res["verdict"]) == {"both_claims_hold_at", "best_gap_improvement_at_5x", "max_speedup_with_20x"}
    for name in ("frontier.png", "frontier.pdf", "frontier.csv"):
        assert (out / name).stat().st_size > 0
    cells = json.loads((out / "store.json").read_text())["cells"]
    # (b)'s cells do not depend on the early budget: one per chip, reused by the second budget
    assert sum(k.startswith("full_noise_injection#") for k in cells) == 2
    assert sum(k.startswith("tsb#") for k in cells) == 4  # one per (budget, chip)
    assert ">5x and >20x together:" in capsys.readouterr().out


def test_a_point_shared_by_budgets_gets_one_label(tmp_path, monkeypatch) -> None:
    """The block on (b) (tsb_full) is the same point at every budget: one label "(b)", not one per budget."""
    import tsb_aihw.plots as plots
    from tsb_aihw.records import FrontierResult, read_record

    result = read_record(FrontierResult, Path("results/frontier-cifar10-vgg8-sigma0.2/frontier.json"))
    seen: list[list[str]] = []
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path: (seen.extend([[t.get_text() for t in fig.axes[0].texts],
                                                                        fig.axes[0].get_title()]),
                                                           real_save(fig, path))[1])
    plots.plot_frontier(result, tmp_path / "frontier")
    budgets = [f"{b:g}" for b in result.config["budgets"]]
    assert len(budgets) >= 2
    # tsb and tsb_bn: one label per budget; tsb_full (the block on (b)'s backbone): one label "(b)"
    assert sorted(seen[0]) == sorted([*budgets, *budgets, "(b)"])
    assert "noise.sigma=0.2" in seen[1]


def test_extra_baselines_only_add_cells_so_a_run_without_them_resumes_with_them() -> None:
    """``--extra-baselines ''`` runs the field frontier's chips before its vanilla backbone is trained; the
    store's identity is the same with and without it, so the committed config resumes that store later."""
    import argparse

    from tsb_aihw.cli import frontier as cli
    from tsb_aihw.pipeline.config import read_config_file
    from tsb_aihw.pipeline.frontier import frontier_identity

    path = "configs/frontier/cifar10-vgg8-w0.5-sigma0.2.yaml"
    raw = read_config_file(path, "frontier config")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    for flag, want in (("", []), ("vanilla", ["vanilla"])):
        args = parser.parse_args(["--config", path, "--extra-baselines", flag, "--out", "x"])
        assert cli.csv_list(args.extra_baselines) == want
    with_vanilla = config_from(FrontierConfig, raw, path)
    without = config_from(FrontierConfig, raw, path, {"extra_baselines": []})
    assert with_vanilla.extra_baselines == ["vanilla"] and without.extra_baselines == []
    assert frontier_identity(with_vanilla) == frontier_identity(without)
    assert "vanilla" not in budget_config(without, 0.2).methods
    assert "vanilla" in budget_config(with_vanilla, 0.2).methods
