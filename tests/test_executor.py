"""Executors: a process pool and a Dask cluster give exactly the per-chip accuracies of the in-process run."""
from __future__ import annotations

import shutil
import sys
import time

import pytest

from tsb_aihw.errors import ConfigError
from tsb_aihw.parallel import DaskExecutor, ProcessExecutor, SerialExecutor, make_executor
from tsb_aihw.pipeline.config import study_config_from_dict
from tsb_aihw.sweeps import run_sweep

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = tiny_study(seed=5, bn_recalibration_batches=2,
                  methods=["full_noise_injection", "tsb", "bn_recalibration"])
# second-derivative masks (data-dependent), per-chip block training and BN recalibration all run in the workers
SWEEP = dict(axis="verified_fraction", values=[0.0, 0.01, 1.0], rules=["second_derivative"],
             points=["tsb", "bn_recalibration"])


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, run_sweep(study_config_from_dict(TINY), out=out, progress=False, plot=False, **SWEEP)


@pytest.fixture(scope="module")
def pool():
    """One 2-process pool for the module (spawning and importing torch + aihwkit takes a while)."""
    with ProcessExecutor(2, threads=1) as ex:
        yield ex


def _rerun(serial_out, tmp_path, executor):
    """Same trained models (copied checkpoints), every cell recomputed on ``executor``."""
    shutil.copytree(serial_out / "checkpoints", tmp_path / "checkpoints")
    return run_sweep(study_config_from_dict(TINY), out=tmp_path, progress=False, plot=False, executor=executor,
                     **SWEEP)


def test_process_pool_equals_serial(serial, pool, tmp_path) -> None:
    out, ref = serial
    assert len(ref.points) == 6 and ref.run_info["executor"]["executor"] == "serial"
    res = _rerun(out, tmp_path, pool)
    assert res.run_info["cells_reused"] == 0 and res.run_info["executor"]["executor"] == "processes"
    assert res.accuracies() == ref.accuracies()


@pytest.mark.slow
def test_dask_local_cluster_equals_serial(serial, tmp_path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    out, ref = serial
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        ex = DaskExecutor(client=client)
        res = _rerun(out, tmp_path, ex)
        ran_on = {w for w in client.run(lambda: 1)}
    assert len(ran_on) == 2 and res.run_info["executor"]["executor"] == "dask"
    assert res.accuracies() == ref.accuracies()


def test_study_cells_on_pool_equal_serial(pool, tmp_path) -> None:
    """``run_study`` (``tsb-aihw run --workers``) runs its (method, chip) cells through the same executors."""
    from tsb_aihw.pipeline.study import run_study

    cfg = study_config_from_dict({**TINY, "methods": ["full_noise_injection", "selective_verify", "tsb"],
                                  "selective": {"methods": ["magnitude"], "fraction_multipliers": [1.0]}})
    ref = run_study(cfg, tmp_path / "serial", progress=False, threads=1)
    shutil.copytree(tmp_path / "serial" / "checkpoints", tmp_path / "pool" / "checkpoints")
    res = run_study(cfg, tmp_path / "pool", progress=False, executor=pool)
    assert set(ref.methods) == set(res.methods) and len(ref.methods) == 3
    for key, m in ref.methods.items():
        assert res.methods[key].per_chip == m.per_chip, key


def test_make_executor_choices_and_errors() -> None:
    assert isinstance(make_executor(), SerialExecutor) and isinstance(make_executor(workers=1), SerialExecutor)
    with pytest.raises(ConfigError, match="not both"):
        make_executor(workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="at least 1"):
        make_executor(workers=0)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        DaskExecutor("tcp://127.0.0.1:9", timeout="2s")  # nothing listens on the discard port
    assert list(SerialExecutor().run(abs, [-1, 2])) == [(0, 1), (1, 2)]


PARENT = """
import os, sys, time
from tsb_aihw.parallel.executor import ProcessExecutor
ex = ProcessExecutor(1)
for _, pid in ex.run(os.readlink, ["/proc/self"]):  # the worker's pid; now a task that outlives the parent
    print(pid, flush=True)
ex._pool.submit(time.sleep, 120)
time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_pool_workers_die_with_a_killed_parent() -> None:
    """SIGKILL the parent in the middle of a cell: its worker stops too, instead of computing for nobody."""
    import signal
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline and _alive(worker):
        time.sleep(0.1)
    assert not _alive(worker), f"worker {worker} outlived its killed parent"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


CELLS = """
import os, time

def slow(task):
    index, seconds, folder = task
    open(os.path.join(folder, f"started-{index}"), "w").close()
    time.sleep(seconds)
    return index
"""

CTRL_C = """
import os, signal, sys, threading, time
from cells_for_test import slow
from tsb_aihw.parallel.executor import ProcessExecutor

folder, twice = sys.argv[1], sys.argv[2] == "twice"
ex = ProcessExecutor(2, threads=1)
list(ex.run(slow, [(-1, 0.0, folder), (-2, 0.0, folder)]))  # workers spawned and warm
start = time.time()
for delay in ((0.5, 0.9) if twice else (0.5,)):
    threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()
handed = []
try:
    for i, result in ex.run(slow, [(i, 2.0, folder) for i in range(6)]):
        handed.append(result)
except KeyboardInterrupt:
    print("interrupted", sorted(handed), round(time.time() - start, 1), flush=True)
ex.close()
"""


@pytest.mark.parametrize("twice", [False, True])
def test_ctrl_c_saves_the_running_cells_and_starts_no_more(tmp_path, twice) -> None:
    """Ctrl-C in a pool run: the cells already running finish and are handed over for saving, no queued cell
    starts (before, the pool's queued cells ran on for nobody); a second Ctrl-C drops the running ones at once."""
    import subprocess

    (tmp_path / "cells_for_test.py").write_text(CELLS)
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", CTRL_C, str(tmp_path), "twice" if twice else "once"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[0] == "interrupted", proc.stdout + proc.stderr
    started = sorted(int(p.name.split("-", 1)[1]) for p in tmp_path.glob("started-*"))
    assert started == [-2, -1, 0, 1], started  # the two running cells only
    if twice:
        assert proc.stdout.strip().endswith("[] " + words[-1]) and float(words[-1]) < 1.8, proc.stdout
    else:
        assert "[0, 1]" in proc.stdout and float(words[-1]) >= 1.9, proc.stdout
        assert "finishing the 2 running cell(s)" in proc.stderr
