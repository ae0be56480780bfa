"""Shared pytest fixtures.

Data: the whole session runs with ``TSB_AIHW_CACHE`` pointing into a temporary directory, so no test
reads or writes the user's real data cache (``~/.cache/tsb_aihw``).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_CIFAR_ARCHIVE = PROJECT_ROOT.parent / "shared" / "data" / "cifar10-train-jpeg.tar.gz"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 2``) each worker gets its share of the cores, for torch and
    for the processes and notebook kernels it starts: two workers at two OpenMP threads each would oversubscribe
    two cores. A test that sets its own thread count still does."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers:
        return
    threads = max(1, (os.cpu_count() or 1) // int(workers))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def _session_data_cache(tmp_path_factory: pytest.TempPathFactory):
    """Session-wide temporary data cache; decoded data in it is shared by all tests of the session."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("tsb_aihw_cache")
        mp.setenv("TSB_AIHW_CACHE", str(path))
        yield path


@pytest.fixture
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty data cache for one test (``TSB_AIHW_CACHE`` points at it)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TSB_AIHW_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def cifar_jpeg_archive() -> Path:
    """The shared CIFAR-10 train JPEG archive at ``../shared/data/`` (skipped, visibly, when absent)."""
    if not SHARED_CIFAR_ARCHIVE.is_file():
        pytest.skip(f"shared CIFAR-10 archive not found at {SHARED_CIFAR_ARCHIVE} (optional; see README.md)")
    return SHARED_CIFAR_ARCHIVE


def _fast_tmp_dir(tmp_path_factory: pytest.TempPathFactory, prefix: str) -> tuple[Path, bool]:
    """A temporary directory on tmpfs (/dev/shm) when it has room, else under pytest's tmp dir.

    Writing the archive's 50,000 small files to this VM's disk takes 5-60 s depending on how busy the
    shared disk is; tmpfs takes the disk out of the measurement. Returns (path, needs_cleanup).
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 1024**3:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=shm)), True
    return tmp_path_factory.mktemp(prefix), False


@pytest.fixture(scope="session")
def cifar_jpeg_decoded(cifar_jpeg_archive: Path, tmp_path_factory: pytest.TempPathFactory):
    """The shared archive extracted and decoded once per session into a temporary cache root.

    Yields ``{"archive", "name", "root", "first_load_s"}``; call ``get_dataset(name, split, root=root)``
    to reuse it. The first load (extract 50,000 JPEGs, decode, save) takes ~15 s.
    """
    from tsb_aihw.data import get_dataset

    root, cleanup = _fast_tmp_dir(tmp_path_factory, "tsb_aihw_cifar_cache_")
    name = f"imagefolder:{cifar_jpeg_archive}"
    try:
        t0 = time.perf_counter()
        get_dataset(name, "test", root=root)
        first = time.perf_counter() - t0
        yield {"archive": cifar_jpeg_archive, "name": name, "root": root, "first_load_s": first}
    finally:
        if cleanup:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a whole module; request it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``. Two cores shared with other jobs: more than
    one torch thread makes tiny models 10-100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fast_cpu():
    """No autograd and one intra-op thread for each test; request it with
    ``pytestmark = pytest.mark.usefixtures("fast_cpu")``. On 2 cores shared with other jobs, 2-thread OpenMP
    regions stalled each small forward by ~0.6 s (measured: squeezenet 32 px 0.64 s with 2 threads, 2 ms with 1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_num_threads(threads)
