"""Warmup-stable-decay schedule, bit-exact resumption from training-state snapshots, and early backbones as
stops of (b)'s run annealed by a short decay."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import tsb_aihw.training.noise_injection as ni
from tsb_aihw.data import make_loader
from tsb_aihw.errors import ConfigError
from tsb_aihw.training import (
    Checkpointing,
    TrainRecipe,
    anneal_from_stop,
    plan_stop,
    read_stop,
    stop_path,
    train_noise_injection,
)
from tsb_aihw.training.checkpointing import load_state
from tsb_aihw.utils.timing import without_timing

from helpers import digits, digits_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: 12 steps per epoch on 1,200 digits at batch 100; 4 epochs = 48 steps
WSD = TrainRecipe(schedule="wsd", lr=0.05, warmup_fraction=0.1, decay_fraction=0.2, start_lr_fraction=0.1,
                  crop_padding=1, flip=False, noise_warmup_fraction=0.2)
EPOCHS = 4


class Killed(Exception):
    """Stands in for the process being killed in the middle of a run."""


@pytest.fixture(scope="module")
def data():
    train, val, _ = digits(1200, 1500)
    return train, val


def run(data, *, checkpointing=None, kill_after=None, loader="make_loader", recipe=WSD, model=None, noise=0.05):
    """One tiny WSD noise-injection run: (model, result); ``kill_after=n`` raises in the forward of step n+1."""
    train, val = data
    torch.manual_seed(0)
    model = model if model is not None else digits_cnn(8, 8)
    train_loader = make_loader(train, 100, shuffle=True, seed=1) if loader == "make_loader" \
        else DataLoader(train, 100, shuffle=True)  # shuffles from torch's global generator
    forward = ni.cached_forward
    calls = 0

    def killable(m, x):
        nonlocal calls
        calls += 1
        if kill_after is not None and calls > kill_after:
            raise Killed
        return forward(m, x)

    ni.cached_forward = killable
    try:
        res = train_noise_injection(model, train_loader, DataLoader(val, 300), noise_std=noise, epochs=EPOCHS,
                                    seed=5, progress=False, recipe=recipe, checkpointing=checkpointing)
    finally:
        ni.cached_forward = forward
    return model, res


def same_state(a, b) -> bool:
    a, b = dict(a), dict(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(data):
    """The uninterrupted run, without any checkpointing."""
    return run(data)


# -- the schedule -------------------------------------------------------------------------------------------


def test_wsd_warms_up_holds_then_decays_with_the_chosen_shape():
    total = 101  # progress 0, 0.01, ..., 1
    for shape, g in (("linear", lambda t: t), ("cosine", lambda t: (1 - math.cos(math.pi * t)) / 2),
                     ("1-sqrt", math.sqrt)):
        r = TrainRecipe(schedule="wsd", lr=1.0, warmup_fraction=0.1, decay_fraction=0.2, start_lr_fraction=0.0,
                        final_lr_fraction=0.1, decay_shape=shape)
        curve = [r.lr_at(s, total) for s in range(total)]
        assert curve[:11] == pytest.approx([s / 10 for s in range(11)])  # linear warm-up to the peak
        assert curve[10:81] == pytest.approx([1.0] * 71)  # stable
        assert curve[80:] == pytest.approx([1 - 0.9 * g(i / 20) for i in range(21)])  # decay to 0.1
        assert [r.anneal_lr_at(i, 5) for i in range(5)] == pytest.approx([1 - 0.9 * g(i / 4) for i in range(5)])
        assert r.stable_steps(total) == (10, 80)


@pytest.mark.parametrize("values,match", [
    ({"schedule": "wsd", "warmup_fraction": 0.5, "decay_fraction": 0.6}, "warmup_fraction \\+ decay_fraction <= 1"),
    ({"schedule": "wsd", "decay_fraction": 0.0}, "decay_fraction must be in"),
    ({"schedule": "wsd", "decay_shape": "step"}, "decay_shape 'step' is unknown"),
    ({"schedule": "cosine", "decay_fraction": 0.3}, "belong to schedule 'wsd'"),
    ({"schedule": "onecycle", "decay_shape": "cosine"}, "belong to schedule 'wsd'"),
])
def test_bad_wsd_values_are_one_config_error_line(values, match):
    with pytest.raises(ConfigError, match=match) as err:
        TrainRecipe(**values)
    assert "\n" not in str(err.value)


def test_a_stop_plan_spends_its_budget_on_the_stop_and_the_anneal():
    plan = plan_stop(WSD, 1000, 0.2)
    assert (plan.stop_step, plan.anneal_steps, plan.steps) == (160, 40, 200)  # anneal = 20% of its own budget
    assert WSD.lr_at(plan.stop_step, 1000) == WSD.lr  # branches off at the peak
    assert plan_stop(WSD, 1000, 0.99).stop_step == 792  # late budgets stop before the decay too
    for budget, match in ((0.05, "outside the stable phase"), (0.12, "outside the stable phase"),
                          (1.0, "in \\(0, 1\\)"), (0.0, "in \\(0, 1\\)")):
        with pytest.raises(ConfigError, match=match) as err:
            plan_stop(WSD, 1000, budget)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="schedule 'wsd'"):
        plan_stop(dataclasses.replace(WSD, schedule="cosine", decay_fraction=0.2), 1000, 0.2)
    with pytest.raises(ConfigError, match="in \\(0, 1\\)"):
        Checkpointing(Path("x"), stops=(0.2, 1.5))
    with pytest.raises(ConfigError, match="every_steps"):
        Checkpointing(Path("x"), every_steps=0)


# -- resumption -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("every,kill_after,loader", [
    (5, 17, "make_loader"),  # resumes from step 15: in the middle of epoch 2
    (None, 30, "make_loader"),  # resumes from the end of epoch 2
    (5, 12, "global"),  # a loader that shuffles from torch's global generator; resumes at the end of epoch 1
    (7, 26, "global"),  # resumes from step 21, mid-epoch, global-generator shuffle
])
def test_a_resumed_wsd_run_gives_the_weights_of_an_uninterrupted_one(data, reference, tmp_path, every, kill_after,
                                                                    loader):
    ref_model, ref_res = reference if loader == "make_loader" else run(data, loader=loader)
    ckpt = Checkpointing(tmp_path, every_steps=every)
    with pytest.raises(Killed):
        run(data, checkpointing=ckpt, kill_after=kill_after, loader=loader)
    assert ckpt.resume_path.exists()
    model, res = run(data, checkpointing=ckpt, loader=loader)  # a fresh process would do exactly this
    assert same_state(model.state_dict(), ref_model.state_dict())
    assert without_timing(res.history) == without_timing(ref_res.history)
    assert (res.best_epoch, res.best_val_acc) == (ref_res.best_epoch, ref_res.best_val_acc)
    again, _ = run(data, checkpointing=ckpt, loader=loader)  # a finished run re-run: nothing left to train
    assert same_state(again.state_dict(), ref_model.state_dict())


def test_snapshots_do_not_change_the_run(data, reference, tmp_path):
    model, res = run(data, checkpointing=Checkpointing(tmp_path, every_steps=3, stops=(0.5,)))
    assert same_state(model.state_dict(), reference[0].state_dict())
    assert load_state(tmp_path / "resume.pt").step == EPOCHS * 12


def test_a_snapshot_of_another_run_is_refused(data, tmp_path):
    ckpt = Checkpointing(tmp_path, every_steps=5)
    with pytest.raises(Killed):
        run(data, checkpointing=ckpt, kill_after=7)
    with pytest.raises(ConfigError, match="snapshot of another run .*noise_std") as err:
        run(data, checkpointing=ckpt, noise=0.1)
    assert "\n" not in str(err.value)
    (tmp_path / "resume.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read"):
        run(data, checkpointing=ckpt)


# -- stops and anneals ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_stops(data, tmp_path_factory):
    directory = tmp_path_factory.mktemp("stops")
    model, res = run(data, checkpointing=Checkpointing(directory, stops=(0.5, 0.7)))
    return directory, model, res


def test_a_stop_holds_the_run_state_at_its_step(data, with_stops):
    directory, _, _ = with_stops
    stop = read_stop(stop_path(directory, 0.5))
    assert stop.plan is not None
    assert (stop.plan.stop_step, stop.plan.anneal_steps, stop.plan.steps) == (19, 5, 24)  # 48 steps in all
    assert (stop.epoch, stop.batch) == (2, 7)  # in the middle of an epoch
    torch.manual_seed(0)
    killed = digits_cnn(8, 8)
    with pytest.raises(Killed):  # the same run, stopped by force after 19 steps
        run(data, kill_after=stop.plan.stop_step, model=killed)
    assert same_state(stop.clean_model_state(), killed.state_dict())
    assert stop.run.precision == "fp32" and stop.run.recipe == WSD


def test_the_anneal_continues_the_stop_and_counts_its_budget(data, with_stops):
    directory, b_model, b_res = with_stops
    train, val = data
    results, models = [], []
    for _ in range(2):
        torch.manual_seed(123)  # the fresh model's own weights do not matter: the stop's replace them
        model = digits_cnn(8, 8)
        res = anneal_from_stop(model, make_loader(train, 100, shuffle=True, seed=1), DataLoader(val, 300),
                               stop_path(directory, 0.5), progress=False)
        results.append(res)
        models.append(model)
    res = results[0]
    assert same_state(models[0].state_dict(), models[1].state_dict())  # deterministic
    assert res.config.stop.to_dict() == {"budget": 0.5, "stop_step": 19, "anneal_steps": 5, "total_steps": 48, "steps": 24}
    assert len(res.history) == 2 and res.history[0] == pytest.approx(b_res.history[0])  # (b)'s first epoch, then
    assert res.restored_best is False  # the annealed state is the early backbone
    assert res.precision == "fp32"
    stop = read_stop(stop_path(directory, 0.5))
    assert res.wall_time_s >= stop.elapsed_s
    assert not same_state(models[0].state_dict(), stop.clean_model_state())  # it trained on
    assert res.history[-1]["val_acc"] > 0.5


def test_an_anneal_refuses_a_resume_snapshot_or_another_loader(data, with_stops):
    directory, _, _ = with_stops
    train, val = data
    with pytest.raises(ConfigError, match="not a stop"):
        anneal_from_stop(digits_cnn(8, 8), make_loader(train, 100), None, directory / "resume.pt", progress=False)
    with pytest.raises(ConfigError, match="snapshot of another run .*total_steps") as err:
        anneal_from_stop(digits_cnn(8, 8), make_loader(train, 50, shuffle=True, seed=1), None,
                         stop_path(directory, 0.5), progress=False)
    assert "\n" not in str(err.value)


def test_stops_need_a_wsd_recipe(data, tmp_path):
    recipe = dataclasses.replace(WSD, schedule="cosine", decay_fraction=0.2)
    with pytest.raises(ConfigError, match="schedule 'wsd'"):
        run(data, checkpointing=Checkpointing(tmp_path, stops=(0.5,)), recipe=recipe)
