"""Noise models AIHWKit lacks: the NVCIM Gaussian device-variation model, an exact (ideal) model and the
write-verify loop that wraps any AIHWKit noise model."""
from tsb_aihw.devices.noise.weight_level import IdealNoiseModel, NVCIMGaussianNoiseModel, WeightLevelNoiseModel
from tsb_aihw.devices.noise.write_verify import WriteVerifyNoiseModel, incremental_verify_loop, verify_loop

__all__ = ["WeightLevelNoiseModel", "NVCIMGaussianNoiseModel", "IdealNoiseModel", "WriteVerifyNoiseModel",
           "verify_loop", "incremental_verify_loop"]
