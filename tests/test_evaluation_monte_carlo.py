"""Monte-Carlo over chips on a tiny AIHWKit model: conventions, reproducibility, isolation, resume."""
from __future__ import annotations

import copy
import csv
import json
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import MonteCarloResult, evaluate_accuracy, evaluate_drift, monte_carlo
from tsb_aihw.utils.seeding import derive_seed

from helpers import clean_trained, digits, digits_cnn

warnings.filterwarnings("ignore", module="aihwkit")
TIMES = [0, "1h", "1y"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    train, test = digits(1400)
    model = clean_trained(lambda: digits_cnn(8), train, epochs=6, lr=3e-3)
    return model, DataLoader(train, 128), DataLoader(test, 512), test


def to_chip(model: nn.Module, prog_noise_scale: float = 3.0) -> nn.Module:
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    cfg = TorchInferenceRPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(prog_noise_scale=prog_noise_scale)
    cfg.forward.is_perfect = True
    cfg.mapping.weight_scaling_omega = 1.0
    return convert_to_analog(model, cfg).eval()


def test_result_shape_statistics_and_files(trained, tmp_path):
    model, _, test, _ = trained
    result = monte_carlo(to_chip(model), test, chips=3, times=TIMES, seed=1, progress=False)
    assert result.times == [0.0, 3600.0, 365 * 86400.0] and result.time_labels == ["0s", "1h", "1y"]
    assert len(result.accuracies) == 3 and all(len(row) == 3 for row in result.accuracies)
    assert result.chip_seeds == [derive_seed(1, "chip", i) for i in range(3)]  # analog.chip.Chip(seed, i)
    assert all(0.0 <= a <= 1.0 for row in result.accuracies for a in row)
    assert len({row[0] for row in result.accuracies}) > 1  # chips differ
    s = result.summaries[2]
    assert s.n == 3 and s.mean == pytest.approx(sum(result.at("1y")) / 3)
    paths = result.save(tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["accuracies"] == result.accuracies and "provenance" in saved
    assert set(saved["summary"]) == {"0s", "1h", "1y"}
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 9 and float(rows[4]["accuracy"]) == result.accuracies[1][1]
    assert len(list(csv.DictReader(paths["summary_csv"].open()))) == 3


def test_same_seed_same_result_other_seed_other_chips(trained):
    model, _, test, _ = trained
    chip = to_chip(model)
    a = monte_carlo(chip, test, chips=2, times=TIMES, seed=4, progress=False)
    b = monte_carlo(chip, test, chips=2, times=TIMES, seed=4, progress=False)
    c = monte_carlo(to_chip(model), test, chips=2, times=TIMES, seed=4, progress=False)
    d = monte_carlo(chip, test, chips=2, times=TIMES, seed=5, progress=False)
    assert a.accuracies == b.accuracies == c.accuracies
    assert a.accuracies != d.accuracies


def test_t0_is_the_programmed_chip_and_drift_starts_from_it(trained):
    model, _, test, _ = trained
    chip = to_chip(model)
    seen = []

    def evaluate(m: nn.Module, loader) -> float:
        tiles = list(m.analog_tiles())
        seen.append([(t.tile.get_weights().clone(), t.programmed_weights.clone(), t.alpha.clone())
                     for t in tiles])
        return evaluate_accuracy(m, loader)

    monte_carlo(chip, test, chips=2, times=["1y", 0, "1d"], seed=0, evaluate=evaluate, progress=False)
    # evaluation order per chip is ascending time: t = 0 first
    for chip_index in (0, 1):
        at0, at1d, at1y = seen[3 * chip_index: 3 * chip_index + 3]
        for w, prog, alpha in at0:
            assert torch.equal(w, prog) and torch.equal(alpha, torch.ones(1))
        for (w1d, prog, _), (w1y, _, _) in zip(at1d, at1y):
            assert not torch.equal(w1d, prog) and not torch.equal(w1y, w1d)
    # a new chip is a new programming draw
    assert not torch.equal(seen[0][0][1], seen[3][0][1])


def test_reported_in_the_order_given(trained):
    model, _, test, _ = trained
    forward = monte_carlo(to_chip(model), test, chips=2, times=[0, "1d", "1y"], seed=2, progress=False)
    shuffled = monte_carlo(to_chip(model), test, chips=2, times=["1y", 0, "1d"], seed=2, progress=False)
    assert shuffled.times == [365 * 86400.0, 0.0, 86400.0]
    assert [[r[1], r[2], r[0]] for r in shuffled.accuracies] == forward.accuracies


def test_per_chip_hook_runs_on_each_chip_and_cannot_leak(trained):
    model, _, test, _ = trained
    chip = to_chip(model)
    baseline = monte_carlo(chip, test, chips=2, times=TIMES, seed=3, progress=False)
    calls = []

    def vandal(m: nn.Module, index: int) -> dict:
        calls.append(index)
        bn = m[1]
        bn.running_mean.add_(5.0)  # digital state
        layer = m[5]
        w, b = layer.get_weights()
        layer.set_weights(w * -1.0, b)  # analog tile state, then re-programmed from it
        for tile in layer.analog_tiles():
            tile.program_weights(from_reference=False)
        return {"hooked": index}

    hooked = monte_carlo(chip, test, chips=2, times=TIMES, seed=3, per_chip=vandal, progress=False)
    assert calls == [0, 1] and hooked.chip_extras == [{"hooked": 0}, {"hooked": 1}]
    assert max(hooked.at(0)) < min(baseline.at(0))  # the hook did hurt its own chips ...
    after = monte_carlo(chip, test, chips=2, times=TIMES, seed=3, progress=False)
    assert after.accuracies == baseline.accuracies  # ... but neither the next chip nor later studies


def test_chip_i_is_the_one_chip_model(trained):
    """monte_carlo's chip i is analog.chip.Chip(seed, i): the same programmed weights as a Chip built by hand
    (so it is chip i of tsb-aihw run, sweep, drift and refresh too)."""
    from tsb_aihw.analog.chip import Chip

    model, _, test, _ = trained
    seen = []

    def record(m: nn.Module, index: int) -> None:
        seen.append(Chip(m, None, 8, index).digest())

    res = monte_carlo(to_chip(model), test, chips=2, times=TIMES, seed=8, per_chip=record, progress=False)
    assert res.chip_digests == seen
    by_hand = [Chip(to_chip(model), None, 8, i).program() for i in range(2)]
    assert by_hand == res.chip_digests and by_hand[0] != by_hand[1]


def test_killed_study_resumes_to_identical_results(trained, tmp_path):
    model, _, test, _ = trained
    reference = monte_carlo(to_chip(model), test, chips=4, times=TIMES, seed=9, progress=False)

    def killed_at_chip_2(m: nn.Module, index: int) -> None:
        if index == 2:
            raise KeyboardInterrupt("simulated kill")

    ckpt = tmp_path / "mc"
    with pytest.raises(KeyboardInterrupt):
        monte_carlo(to_chip(model), test, chips=4, times=TIMES, seed=9, per_chip=killed_at_chip_2,
                    out=ckpt, progress=False)
    assert sorted(json.loads((ckpt / "store.json").read_text())["cells"]) == ["chip#0", "chip#1"]
    resumed = monte_carlo(to_chip(model), test, chips=4, times=TIMES, seed=9, out=ckpt, progress=False)
    assert resumed.resumed_chips == 2
    assert resumed.accuracies == reference.accuracies and resumed.chip_seeds == reference.chip_seeds
    again = monte_carlo(to_chip(model), test, chips=4, times=TIMES, seed=9, out=ckpt, progress=False)
    assert again.resumed_chips == 4 and again.accuracies == reference.accuracies
    with pytest.raises(ConfigError, match=r"another monte-carlo configuration \(differs in: seed\)"):
        monte_carlo(to_chip(model), test, chips=4, times=TIMES, seed=10, out=ckpt, progress=False)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other[5].bias += 1e-3
    with pytest.raises(ConfigError, match=r"differs in: model"):  # same seed and times, different model
        monte_carlo(to_chip(other), test, chips=4, times=TIMES, seed=9, out=ckpt, progress=False)


def test_bad_inputs_are_config_errors(trained):
    model, _, test, dataset = trained
    chip = to_chip(model)
    with pytest.raises(ConfigError, match="chips"):
        monte_carlo(chip, test, chips=0, times=TIMES, seed=0, progress=False)
    with pytest.raises(ConfigError, match="no drift times"):
        monte_carlo(chip, test, chips=1, times=[], seed=0, progress=False)
    with pytest.raises(ConfigError, match="duplicates"):
        monte_carlo(chip, test, chips=1, times=["1h", 3600], seed=0, progress=False)
    with pytest.raises(ConfigError, match="analog model"):
        monte_carlo(model, test, chips=1, times=TIMES, seed=0, progress=False)
    with pytest.raises(ConfigError, match="preset"):
        evaluate_drift(model, dataset, None, TIMES, 1, 0, progress=False)
    with pytest.raises(ConfigError, match="no drift times"):
        evaluate_drift(chip, dataset, None, [], 1, 0, progress=False)
    with pytest.raises(ConfigError, match="chips"):
        evaluate_drift(chip, dataset, None, TIMES, 0, 0, progress=False)


def test_evaluate_drift_on_analog_model_with_dataset(trained):
    model, _, test, dataset = trained
    direct = monte_carlo(to_chip(model), test, chips=2, times=TIMES, seed=6, progress=False)
    result = evaluate_drift(to_chip(model), dataset, None, "0,1h,1y", chips=2, seed=6, batch_size=512,
                            progress=False)
    assert isinstance(result, MonteCarloResult) and result.accuracies == direct.accuracies


def test_evaluate_drift_converts_a_digital_model_with_the_preset(trained, monkeypatch):
    import tsb_aihw.analog

    model, _, test, dataset = trained
    calls = []

    def fake_to_analog(m, preset, verify="tsb"):  # plumbing only
        calls.append((preset, verify))
        return to_chip(m)

    monkeypatch.setattr(tsb_aihw.analog, "to_analog", fake_to_analog, raising=False)
    sentinel = object()
    result = evaluate_drift(model, dataset, sentinel, TIMES, chips=2, seed=6, batch_size=512, progress=False)
    assert calls == [(sentinel, "tsb")]
    assert result.accuracies == monte_carlo(to_chip(model), test, chips=2, times=TIMES, seed=6,
                                            progress=False).accuracies
