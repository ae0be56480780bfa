"""The main job (``make demo``): lenet3 on the offline MNIST-5k subset, TSB vs baselines on two presets."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tsb_aihw.pipeline.config import METHODS, StudyConfig, study_config_from_dict
from tsb_aihw.pipeline.report import method_rows, write_report
from tsb_aihw.pipeline.study import run_study
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, ensure_writable_dir
from tsb_aihw.utils.provenance import provenance

DRIFT_TIMES = ["1s", "1h", "1d", "1mo", "1y"]
# Drift studies evaluate every method at 5 times through AIHWKit's tiles: keep them to the methods that
# answer "does the block hold up over time" so the demo stays near 10 minutes on 2 cores.
DRIFT_METHODS = ["full_noise_injection", "full_verify", "bn_recalibration", "tsb"]
DRIFT_EVAL_LIMIT = 400  # test images per (chip, time) in drift studies: 8-bit periphery tiles are ~4x digital


def demo_configs(model: str = "lenet3", dataset: str = "mnist5k", presets: list[str] | None = None,
                 chips: int | None = None, seed: int = 0, quick: bool = False, device: str = "cpu",
                 sigma: float | None = None) -> list[StudyConfig]:
    """The demo's studies: the paper's device model at a sigma where the gap is visible, and PCM with drift."""
    base: dict[str, Any] = {
        "seed": seed, "device": device, "chips": chips if chips is not None else (3 if quick else 20),
        "model": {"name": model},
        "data": {"name": dataset, "eval_limit": 300 if quick else None},
        "backbone": {"full_epochs": 3 if quick else 30, "early_epochs": 1 if quick else 6},
        "block": {"epochs": 1 if quick else 8},
    }
    out = []
    for preset in presets or ["nvcim-gaussian", "pcm"]:
        cfg = dict(base, preset=preset)
        is_path = preset.endswith((".yaml", ".yml"))
        if preset == "nvcim-gaussian" and sigma is not None:
            cfg["preset_overrides"] = {"noise__sigma": sigma}
        if preset == "pcm" or (is_path and "pcm" in Path(preset).name):
            cfg["times"] = DRIFT_TIMES[::2] if quick else DRIFT_TIMES
            cfg["methods"] = DRIFT_METHODS
            cfg["chips"] = chips if chips is not None else (2 if quick else 8)
            cfg["data"] = dict(base["data"], eval_limit=base["data"]["eval_limit"] or DRIFT_EVAL_LIMIT)
        else:
            cfg["times"] = [0.0]
            cfg["methods"] = list(METHODS)
        if quick:
            cfg["methods"] = [m for m in cfg["methods"] if m not in ("tsb_generic",)]
            cfg["selective"] = {"methods": ["magnitude", "second_derivative"], "fraction_multipliers": [1.0]}
        out.append(study_config_from_dict(cfg, f"demo[{preset}]"))
    return out


def run_demo(out: str | Path, configs: list[StudyConfig], command: str, progress: bool = True) -> dict[str, Any]:
    """Run every study into ``out/<preset>/`` and write the combined results, CSV and report into ``out``."""
    root = ensure_writable_dir(out)
    studies = []
    for cfg in configs:
        name = Path(cfg.preset).stem
        studies.append(run_study(cfg, root / name, progress=progress))
    combined = {
        "command": command, "provenance": provenance(),
        "studies": {Path(r["config"]["preset"]).stem: r for r in studies},
        "claims": {Path(r["config"]["preset"]).stem: r["claims"] for r in studies},
    }
    for r in studies:  # plots of each study are referenced from the top-level report
        r["plots"] = [f"{Path(r['config']['preset']).stem}/{p}" for p in r["plots"]]
    atomic_write_json(root / "results.json", combined)
    atomic_write_csv(root / "methods.csv", [row for r in studies for row in method_rows(r)])
    write_report(studies, root, command)
    return combined


def config_summary(cfg: StudyConfig) -> str:
    d = dataclasses.asdict(cfg)
    return (f"{d['model']['name']} on {d['data']['name']}, preset {d['preset']}, {d['chips']} chips, "
            f"times {d['times']}, methods {len(d['methods'])}")
