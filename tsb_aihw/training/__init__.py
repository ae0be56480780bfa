"""Training: noise-injection (hardware-aware) training and shared-block training on a frozen backbone."""
from tsb_aihw.training.block_training import train_block
from tsb_aihw.training.loop import EarlyStop, TrainResult
from tsb_aihw.training.noise_injection import (
    WeightNoise,
    add_weight_noise,
    remove_weight_noise,
    train_noise_injection,
    weight_noise,
)
from tsb_aihw.training.recipe import TrainRecipe

__all__ = [
    "EarlyStop",
    "TrainRecipe",
    "TrainResult",
    "WeightNoise",
    "add_weight_noise",
    "remove_weight_noise",
    "train_block",
    "train_noise_injection",
    "weight_noise",
]
