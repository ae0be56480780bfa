"""The typed parts of results and of training (issue 32): each writes the mapping its dict form always had, and
one read back from a file is checked."""
from __future__ import annotations

import pytest

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.evaluation.monte_carlo import ChipRow, check_chip_row
from tsb_aihw.records import PresetRecord, RefreshCost, RefreshWrite, load_record
from tsb_aihw.training import EarlyStop, OptimizerSetup, StopPlan, TrainConfig, TrainRecipe


def test_a_training_config_is_the_flat_mapping_the_trainers_reported() -> None:
    plain = TrainConfig(noise_std=0.1, optim=OptimizerSetup(optimizer="adam", lr=1e-3, schedule="cosine",
                                                            weight_decay=None), precision="fp32")
    assert plain.to_dict() == {"noise_std": 0.1, "optimizer": "adam", "lr": 1e-3, "schedule": "cosine",
                               "weight_decay": None, "precision": "fp32", "early_stop": None}
    recipe = TrainRecipe()
    block = TrainConfig(noise_std=0.0, backbone_noise_std=0.05, precision="bf16", early_stop=EarlyStop(patience=2),
                        optim=OptimizerSetup(optimizer=recipe.optimizer, lr=recipe.lr, schedule=recipe.schedule,
                                             weight_decay=recipe.weight_decay, recipe=recipe))
    out = block.to_dict()
    assert list(out)[:2] == ["noise_std", "backbone_noise_std"] and out["recipe"] == recipe.to_dict()
    assert out["early_stop"] == EarlyStop(patience=2).to_dict() and "stop" not in out
    annealed = TrainConfig(noise_std=0.1, optim=plain.optim, precision="fp32",
                           stop=StopPlan(budget=0.5, total_steps=48, stop_step=19, anneal_steps=5))
    assert annealed.to_dict()["stop"] == {"budget": 0.5, "stop_step": 19, "anneal_steps": 5, "total_steps": 48,
                                          "steps": 24}


def test_a_stored_chip_row_is_checked_and_keeps_its_keys() -> None:
    row = ChipRow(chip=1, seed=7, accuracies=[0.5, 0.25], digest="ab", seconds=0.1, extra={"samples": 4})
    assert list(row.to_dict()) == ["chip", "seed", "accuracies", "digest", "seconds", "extra"]
    assert check_chip_row(row.to_dict(), "store.json") == row
    with pytest.raises(ConfigError, match="mis-shaped"):
        check_chip_row({"seed": 7, "accuracies": [0.5]}, "store.json")


def test_the_refresh_cost_and_a_preset_read_back_checked() -> None:
    cost = RefreshCost(chip_pulses=1e5, block_write0_pulses=600.0, block_weights=256, block_train0_s=1.5,
                       per_refresh=[RefreshWrite(time="1h", block_pulses=550.0, block_reads=900.0, train_s=1.2,
                                                 backbone_device_reads=4e4)],
                       refresh_total_pulses=550.0, refresh_pulses_vs_chip=0.0055)
    assert load_record(RefreshCost, cost.to_dict(), "results.json") == cost
    tree = {"name": "pcm", "identity": "0123", "noise": {"model": "pcm"}}
    assert PresetRecord.from_tree(tree, "results.json: preset").to_dict() is tree
    with pytest.raises(ConfigError, match="results.json: preset = .* is not a device preset"):
        PresetRecord.from_tree({"noise": {}}, "results.json: preset")
    with pytest.raises(TSBError, match="block_weights"):
        load_record(RefreshCost, cost.to_dict() | {"block_weights": -1}, "results.json")


def test_convergence_is_what_the_last_tenth_of_the_epochs_added() -> None:
    from tsb_aihw.records import TrainingMeta

    climbing = [{"epoch": e, "val_acc": 0.5 + 0.01 * e} for e in range(30)]  # +1 pp per epoch to the end
    gain, tail = TrainingMeta(train_time_s=1.0, epochs=30, history=climbing).val_gain_over_last(0.1)
    assert tail == 3 and gain == pytest.approx(0.03)
    flat = [{"epoch": e, "val_acc": min(0.9, 0.5 + 0.05 * e)} for e in range(30)]
    assert TrainingMeta(train_time_s=1.0, history=flat).val_gain_over_last(0.1) == (0.0, 3)
    short = TrainingMeta(train_time_s=1.0, history=[{"val_acc": 0.4}, {"val_acc": 0.6}])
    assert short.val_gain_over_last(0.1) == pytest.approx((0.2, 1))  # at least one epoch of tail
    assert TrainingMeta(train_time_s=1.0).val_gain_over_last() is None
    assert TrainingMeta(train_time_s=1.0, history=[{"val_acc": None}] * 5).val_gain_over_last() is None
