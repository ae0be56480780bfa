"""Every shipped config loads and validates (names, ranges, recipes) without training anything."""
from __future__ import annotations

from pathlib import Path

import pytest

from tsb_aihw.pipeline.config import config_from, read_config_file
from tsb_aihw.sweeps.options import load_sweep_config
from tsb_aihw.pipeline.frontier import FrontierConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_validates(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tsb_aihw.utils.device as device

    monkeypatch.setattr(device, "resolve_device", lambda d: d)  # the -gpu twins name cuda; no GPU here
    monkeypatch.chdir(path.parents[1] if path.parent.name == "configs" else path.parents[2])
    if path.parent.name == "frontier":
        cfg = config_from(FrontierConfig, read_config_file(path), str(path))
        assert cfg.chips >= 20 and cfg.budgets
        if path.stem.startswith("cifar10-"):  # the frontier twins of the CIFAR-10 studies
            # all test images (the field configs' 80/10/10 split holds out 5,000) or at least 5,000 of them
            assert (cfg.data.eval_limit or 5000) >= 5000 and cfg.block.calibration_images == 5000
            width = 1.0 if path.stem.endswith("-gpu") else 0.5 if "-w0.5-" in path.stem else 0.25
            assert cfg.model.width == width
            assert (cfg.device == "cuda") == path.stem.endswith("-gpu")
    else:
        cfg, sweeps = load_sweep_config(path)
        if path.stem.startswith("cifar10-") and path.parent.name == "configs":  # the CIFAR-10 studies
            assert cfg.chips >= 20 and cfg.data.eval_limit >= 5000 and sweeps["sigma"].values == [0.1, 0.2, 0.3]
            assert cfg.backbone.recipe is not None and cfg.backbone.recipe.optimizer == "sgd"
            assert cfg.model.fc_init == "fan_in"
            assert cfg.model.width == (1.0 if path.stem.endswith("-gpu") else 0.25)
