"""Device presets (YAML in ``device_presets/``) -> AIHWKit RPU configs, the NVCIM Gaussian noise model, the
write-verify loop and the programming cost. See ``docs/devices.md``."""
from tsb_aihw.devices.noise import (
    IdealNoiseModel,
    NVCIMGaussianNoiseModel,
    WeightLevelNoiseModel,
    WriteVerifyNoiseModel,
)
from tsb_aihw.devices.presets import DevicePreset, list_presets, load_preset, presets_dir
from tsb_aihw.devices.programming import (
    ProgrammingCost,
    get_verify_mask,
    iter_inference_tiles,
    programming_cost,
    set_verify_mask,
    tile_programming_stats,
)
from tsb_aihw.devices.schema import nvcim_std_factor

__all__ = [
    "DevicePreset", "load_preset", "list_presets", "presets_dir",
    "set_verify_mask", "get_verify_mask", "tile_programming_stats", "programming_cost", "ProgrammingCost",
    "iter_inference_tiles",
    "WriteVerifyNoiseModel", "NVCIMGaussianNoiseModel", "IdealNoiseModel", "WeightLevelNoiseModel",
    "nvcim_std_factor",
]
