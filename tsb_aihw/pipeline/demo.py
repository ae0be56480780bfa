"""The main job (``make demo``): lenet3 on the offline MNIST-5k subset, TSB vs baselines on two presets."""
from __future__ import annotations

from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.times import DRIFT_TIMES
from tsb_aihw.pipeline.config import METHODS, StudyConfig, study_config_from_dict
from tsb_aihw.utils.io import JsonObject

DEMO_PRESETS = ("nvcim-gaussian", "pcm")
# Drift studies evaluate every method at 5 times through 8-bit periphery tiles: keep them to the methods that
# answer "does the block hold up over time" so the demo stays near 10 minutes on 2 cores.
DRIFT_METHODS = ["full_noise_injection", "full_verify", "bn_recalibration", "tsb"]
DRIFT_EVAL_LIMIT = 400  # test images per (chip, time) in drift studies: 8-bit periphery tiles are ~4x digital
DRIFT_CHIPS = 8  # chips of the demo's drift study (5 times per chip)


def demo_configs(model: str = "lenet3", dataset: str = "mnist5k", presets: list[str] | None = None,
                 chips: int | None = None, seed: int = 0, quick: bool = False, device: str = "cpu",
                 sigma: float | None = None) -> list[StudyConfig]:
    """The demo's studies: the paper's device model at a sigma where the gap is visible, and PCM with drift.

    ``sigma`` sets ``noise.sigma`` of every preset that has one; a preset named explicitly without it (e.g.
    ``--preset pcm --sigma 0.3``) is an error, not a silently ignored flag."""
    base: JsonObject = {"seed": seed, "device": device, "model": {"name": model}, "data": {"name": dataset}}
    if chips is not None:
        base["chips"] = chips
    if quick:  # the 1-minute smoke run; otherwise every budget is StudyConfig's default
        base |= {"chips": chips if chips is not None else 3, "data": {"name": dataset, "eval_limit": 300},
                 "backbone": {"full_epochs": 3, "early_epochs": 1}, "block": {"epochs": 1}}
    out = []
    for name in presets or DEMO_PRESETS:
        preset = load_preset(name)
        cfg = dict(base, preset=name)
        if sigma is not None and hasattr(preset.noise, "sigma"):
            cfg["preset_overrides"] = {"noise.sigma": sigma}
        elif sigma is not None and presets:
            raise ConfigError(f"--sigma sets noise.sigma, which preset {name!r} (noise.model {preset.noise.model!r}) "
                              "does not have; drop --sigma or use --preset nvcim-gaussian")
        if preset.drifts:
            cfg["times"] = list(DRIFT_TIMES[1::2] if quick else DRIFT_TIMES[1:])
            cfg["methods"] = DRIFT_METHODS
            cfg["chips"] = chips if chips is not None else (2 if quick else DRIFT_CHIPS)
            cfg["data"] = dict(base["data"], eval_limit=base["data"].get("eval_limit") or DRIFT_EVAL_LIMIT)
        else:
            cfg["times"] = [0.0]
            cfg["methods"] = list(METHODS)
        if quick:
            cfg["methods"] = [m for m in cfg["methods"] if m not in ("tsb_generic",)]
            cfg["selective"] = {"methods": ["magnitude", "second_derivative"], "fraction_multipliers": [1.0]}
        out.append(study_config_from_dict(cfg, f"demo[{name}]"))
    if sigma is not None and not any("noise.sigma" in c.preset_overrides for c in out):
        raise ConfigError("--sigma sets noise.sigma, which none of the presets has; use --preset nvcim-gaussian")
    return out


def config_summary(cfg: StudyConfig) -> str:
    return (f"{cfg.model.name} on {cfg.data.name}, preset {cfg.preset}, {cfg.chips} chips, times {cfg.times}, "
            f"methods {len(cfg.methods)}")
