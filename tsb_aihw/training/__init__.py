"""Training: noise-injection (hardware-aware) training and shared-block training on a frozen backbone."""
from tsb_aihw.training.block_training import train_block
from tsb_aihw.training.checkpointing import Checkpointing, StopPlan, plan_stop
from tsb_aihw.training.loop import EarlyStop, OptimizerSetup, TrainConfig, TrainResult
from tsb_aihw.training.noise_injection import (
    WeightNoise,
    add_weight_noise,
    remove_weight_noise,
    train_noise_injection,
    weight_noise,
)
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.training.stops import anneal_from_stop, read_stop, stop_path

__all__ = [
    "Checkpointing",
    "EarlyStop",
    "OptimizerSetup",
    "StopPlan",
    "TrainConfig",
    "TrainRecipe",
    "TrainResult",
    "WeightNoise",
    "add_weight_noise",
    "anneal_from_stop",
    "plan_stop",
    "read_stop",
    "remove_weight_noise",
    "stop_path",
    "train_block",
    "train_noise_injection",
    "weight_noise",
]
