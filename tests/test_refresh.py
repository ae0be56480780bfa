"""TSB refresh study: block clock semantics, paired arms, refresh cost, resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from tsb_aihw.analog import to_analog
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model, get_tsb, insert_tsb
from tsb_aihw.analog.chip import Chip
from tsb_aihw.pipeline.config import RefreshConfig, config_from
from tsb_aihw.pipeline.refresh import _block_stats, run_refresh_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DAY, YEAR = 86400.0, 365 * 86400.0


def _chip() -> Chip:
    torch.manual_seed(0)
    m = insert_tsb(get_model("lenet3", num_classes=10, in_channels=1, input_size=28)).eval()
    nn.init.normal_(get_tsb(m).conv.weight, std=0.1)
    chip = Chip(to_analog(m, load_preset("pcm"), verify="tsb").eval(), load_preset("pcm"), 0, 5)
    chip.program()
    return chip


def _weights(a: nn.Module) -> dict[str, torch.Tensor]:
    return {n: torch.cat([t.tile.get_weights().flatten() for t in layer.analog_tiles()])
            for n, layer in a.named_analog_layers()}


@torch.no_grad()
def test_block_has_its_own_clock_and_backbone_matches_a_plain_drift():
    chip = _chip()
    a = chip.model
    chip.drift(YEAR)
    reference = _weights(a)
    conv = get_tsb(a).conv
    chip.write_block(0.05 * torch.randn(conv.out_channels, conv.in_channels, 1, 1), at=DAY)
    stats = _block_stats(a)
    assert stats["verified_cells"] == stats["cells"] > 0 and stats["pulses"] >= stats["devices"]
    assert (chip.block_writes, chip.block_written_at) == (1, DAY)
    block_tile = next(iter(conv.analog_tiles()))
    # right at the re-write the block holds its freshly programmed weights, the backbone its drift at t
    chip.drift(DAY)
    assert torch.equal(block_tile.tile.get_weights(), block_tile.programmed_weights)
    assert float(torch.as_tensor(block_tile.alpha).reshape(-1)[0]) == 1.0
    now = _weights(a)
    plain = _chip()  # the same chip without a re-written block
    plain.drift(DAY)
    same_time = _weights(plain.model)
    for name in ("conv1", "conv2", "fc"):
        assert torch.equal(now[name], same_time[name])  # the same backbone draw as a plain drift at t
        assert not torch.equal(now[name], reference[name])
    # a year later the block has drifted for (1 y - 1 d), not 1 y
    chip.drift(YEAR)
    aged = block_tile.tile.get_weights().clone()
    assert not torch.equal(aged, block_tile.programmed_weights)
    with pytest.raises(RuntimeError, match="before the block write"):
        chip.drift(1.0)


def test_refresh_times_are_checked():
    cfg = config_from(RefreshConfig, {"refresh_times": ["1mo", "1d"], "times": ["1s", "1y"]}, "t")
    assert cfg.refresh_times == ["1mo", "1d"]
    with pytest.raises(ConfigError, match="> 0"):
        config_from(RefreshConfig, {"refresh_times": [0], "times": ["1s", "1y"]}, "t")
    with pytest.raises(ConfigError, match="before the last evaluation time"):
        config_from(RefreshConfig, {"refresh_times": ["1y"], "times": ["1s", "1d"]}, "t")
    with pytest.raises(ConfigError, match="refresh_times is empty"):
        config_from(RefreshConfig, {"refresh_times": []}, "t")
    with pytest.raises(ConfigError, match="repeat 1d"):
        config_from(RefreshConfig, {"refresh_times": ["1d", "1d"]}, "t")


def _cfg(**extra):
    base = {"preset": "pcm", "chips": 2, "seed": 0, "times": ["1s", "1h", "1d", "1y"], "methods": ["tsb"],
            "model": {"name": "lenet3"}, "data": {"name": "digits", "eval_limit": 120, "eval_batch_size": 120},
            "backbone": {"full_epochs": 1, "early_epochs": 1}, "block": {"epochs": 1}, "refresh_times": ["1h"]}
    return config_from(RefreshConfig, {**base, **extra}, "test")


def test_non_drifting_preset_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not drift"):
        _cfg(preset="nvcim-gaussian")


@pytest.mark.slow
def test_refresh_study_end_to_end_pairs_arms_and_resumes(tmp_path: Path):
    res = run_refresh_study(_cfg(), tmp_path, progress=False)
    arms = res.arms
    assert set(arms) == {"tsb", "tsb_refresh", "tsb_rewrite", "reference"}
    for chip in range(2):  # before the first refresh every TSB arm holds the same chip: identical accuracies
        assert arms["tsb"].per_chip[chip][0] == arms["tsb_refresh"].per_chip[chip][0] \
            == arms["tsb_rewrite"].per_chip[chip][0]
    minus = arms["tsb_refresh"].minus_tsb
    assert minus is not None and minus["1s"].mean == 0.0
    cost = res.cost
    (r,) = cost.per_refresh
    assert r.time == "1h" and r.train_s > 0 and r.backbone_device_reads > 0
    # a refresh writes only the block: a few pulses per block device, far below programming the chip
    assert 0 < r.block_pulses < 0.05 * cost.chip_pulses
    assert r.block_pulses >= 2 * res.block["weights"]  # PCM: 2 devices per weight, >= 1 pulse each
    for name in ("results.json", "refresh_chips.csv", "refresh_summary.csv", "refresh_accuracy_vs_time.png",
                 "refresh_accuracy_vs_time.pdf"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["provenance"] and saved["config"]["chips"] == 2 and saved["refresh_labels"] == ["1h"]
    # re-run: every chip comes from the result store, same numbers
    again = run_refresh_study(_cfg(), tmp_path, progress=False)
    assert again.arms["tsb_refresh"].per_chip == arms["tsb_refresh"].per_chip
    assert (again.wall_time_s or 0) < (res.wall_time_s or 0)


def test_cli_config_overrides_and_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture):
    from tsb_aihw.cli.main import build_parser, main

    args = build_parser().parse_args(["refresh", "--out", str(tmp_path), "--chips", "3", "--times", "1s,1d,1y",
                                      "--block-epochs", "2", "--dataset", "digits"])
    from tsb_aihw.cli.refresh import build_config

    cfg = build_config(args)
    assert (cfg.preset, cfg.chips, cfg.times, cfg.block.epochs, cfg.data.name) == ("pcm", 3, ["1s", "1d", "1y"], 2,
                                                                                    "digits")
    assert main(["refresh", "--out", str(tmp_path), "--preset", "nvcim-gaussian", "--no-progress"]) == 2
    assert "does not drift" in capsys.readouterr().err
    assert main(["refresh", "--out", str(tmp_path), "--refresh", "2y", "--times", "1s,1y", "--no-progress"]) == 2
    assert "not before the last evaluation time" in capsys.readouterr().err
