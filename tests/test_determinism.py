"""Same config + same seed = bit-identical results on the same machine, apart from wall-clock timings.

Timing fields are listed in ``tsb_aihw.utils.timing`` (``WALL_CLOCK_KEYS``); ``result_differences`` compares
everything else. The end-to-end case runs ``tsb-aihw run`` twice in fresh processes (nothing shared but the
disk: separate output directories) on a PCM config, so programming noise, drift, read noise of the read-back,
periphery (IO) noise at evaluation, per-chip block training and BN recalibration are all covered.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tsb_aihw.data import get_dataset, make_loader
from tsb_aihw.models import get_model
from tsb_aihw.stack import PINS
from tsb_aihw.training import train_block, train_noise_injection
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.seeding import derive_seed, runtime_settings, seeded
from tsb_aihw.utils.timing import is_timing_key, result_differences, timing_only, without_timing

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = tiny_study(preset="pcm", chips=3, times=[0, "1h"], backbone={"full_epochs": 1, "early_epochs": 1},
                  methods=["full_noise_injection", "bn_recalibration", "tsb"])
CLI = [sys.executable, "-m", "tsb_aihw.cli.main"]


def run_cli(cwd: Path, config: Path, *extra: str, **popen: object) -> subprocess.CompletedProcess:
    """``tsb-aihw run`` in ``cwd`` with the relative output directory ``out`` (so both runs record the same
    command line) and one torch thread (the thread count is part of what makes bits identical)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*CLI, "run", "--config", str(config), "--out", "out", "--no-progress", *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **popen)


def _digits_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8)


def test_training_depends_only_on_its_seed_not_on_the_loaders_history() -> None:
    """A shared loader's shuffle generator advances every epoch; training resets it from its own seed, so a
    re-run that skipped earlier work (a resumed study) trains on the same batches."""
    train = make_loader(get_dataset("digits", "train"), 64, shuffle=True, seed=1)
    a = _digits_model(0)
    train_noise_injection(a, train, noise_std=0.2, epochs=1, seed=7, progress=False)
    for _ in range(3):  # other work iterates the same loader in between
        list(train)
    b = _digits_model(0)
    train_noise_injection(b, train, noise_std=0.2, epochs=1, seed=7, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = _digits_model(0)
    train_noise_injection(c, train, noise_std=0.2, epochs=1, seed=8, progress=False)
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))


def test_block_training_depends_only_on_its_seed() -> None:
    from tsb_aihw.models import insert_tsb

    train = make_loader(get_dataset("digits", "train"), 64, shuffle=True, seed=1)
    base = insert_tsb(_digits_model(0), k=4).eval()
    outs = []
    for history in (0, 2):
        for _ in range(history):
            list(train)
        m = __import__("copy").deepcopy(base)
        train_block(m, train, epochs=1, lr=1e-2, seed=11, progress=False)
        outs.append(m.tsb.conv.weight.detach().clone())
    assert torch.equal(outs[0], outs[1]) and outs[0].abs().sum() > 0


def test_seeded_block_is_reproducible_and_leaves_the_global_generators_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded(derive_seed(5, "step")):
        a = torch.randn(4)
    assert torch.equal(torch.rand(3), expected_next)  # the outer stream is untouched
    with seeded(derive_seed(5, "step")):
        assert torch.equal(torch.randn(4), a)


def test_provenance_records_versions_and_the_thread_settings() -> None:
    p = provenance()
    assert {"torch", "aihwkit", "numpy", "python", "tsb-aihw"} <= set(p.versions)
    assert p.runtime == runtime_settings()
    assert p.runtime.torch_num_threads == torch.get_num_threads() == 1  # one_torch_thread


def test_timing_keys_are_exactly_the_wall_clock_fields() -> None:
    r = {"wall_time_s": 1.0, "cost": {"time_s": 2.0}, "times": [0.0, 3600.0],
         "training": {"backbone": {"train_time_s": 3.0, "history": [{"seconds": 1.0, "train_loss": 0.5}]}},
         "claims": {"training_speedup": {"value": 2.0, "baseline_s": 4.0}, "verified_fraction": {"value": 0.1}}}
    assert without_timing(r) == {"cost": {"time_s": 2.0}, "times": [0.0, 3600.0],
                                 "training": {"backbone": {"history": [{"train_loss": 0.5}]}},
                                 "claims": {"verified_fraction": {"value": 0.1}}}
    assert set(timing_only(r)) == {"wall_time_s", "training.backbone.train_time_s",
                                   "training.backbone.history[0].seconds", "claims.training_speedup"}
    assert not is_timing_key("time_s")  # a drift time or a modelled programming time, not a wall clock
    # the refresh study's block training times are wall clocks too (a before/after comparison found them kept)
    refresh = {"block_train0_s": 3.1, "refresh_events": [{"train_s": 2.0, "block_reads": 4}]}
    assert without_timing(refresh) == {"refresh_events": [{"block_reads": 4}]}
    other = json.loads(json.dumps(r))
    other["wall_time_s"] = 99.0
    other["training"]["backbone"]["history"][0]["train_loss"] = 0.25
    assert result_differences(r, other) == ["training.backbone.history[0].train_loss: 0.5 != 0.25"]


@pytest.mark.slow
def test_two_fresh_processes_give_identical_results(tmp_path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    runs = []
    for name in ("a", "b"):
        cwd = tmp_path / name
        cwd.mkdir()
        proc = run_cli(cwd, config)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(cwd / "out")
    a, b = (json.loads((r / "results.json").read_text()) for r in runs)
    assert result_differences(a, b) == []
    from tsb_aihw.devices import load_preset

    pcm = load_preset("pcm").folder_name
    study = a["studies"][pcm]
    # the comparison is not vacuous: real per-chip accuracies, at two times, that differ between chips
    per_chip = study["methods"]["tsb"]["per_chip"]
    assert len(per_chip) == 3 and all(len(c) == 2 for c in per_chip) and len({tuple(c) for c in per_chip}) > 1
    assert timing_only(a)  # and the timings that were left out do exist
    # every result records config, seed and versions
    assert study["config"]["seed"] == study["seed"] == TINY["seed"]
    assert study["config"]["model"] == TINY["model"] | {"fc_init": None} and a["provenance"]["versions"]["aihwkit"] == PINS["aihwkit"]
    assert a["provenance"]["runtime"]["torch_num_threads"] == 1
    # finished cells agree too (the files a resumed run reads)
    cells = [json.loads((r / pcm / "store.json").read_text()) for r in runs]
    assert result_differences(cells[0], cells[1]) == []
