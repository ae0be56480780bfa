"""Executors for independent cells: serial (in-process), a local process pool, or Dask distributed.

Every executor has one job: ``run(fn, tasks)`` yields ``(index, result)`` pairs as tasks finish, so the caller
can save each result at once (a killed run keeps everything that finished). ``fn`` must be a picklable
top-level function and tasks small picklable values: what travels to a worker is the task, never a model.

Results do not depend on the executor as long as the task function seeds everything from the task itself
(see ``tsb_aihw.pipeline.study.run_cell_task``) and uses the same number of torch threads.
"""
from __future__ import annotations

import contextlib
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterator, Sequence

from tsb_aihw.errors import ConfigError, StackError

DASK_HINT = "pip install 'tsb-aihw[dask]'  (or: pip install 'dask[distributed]')"


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


class Executor:
    """Base class: ``run(fn, tasks)`` yields ``(index, fn(tasks[index]))`` in completion order."""

    name = "base"
    workers = 1
    threads: int | None = None  # torch threads inside each task (None: leave as is); task functions read it

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What results files record about where cells ran."""
        return {"executor": self.name, "workers": self.workers, "threads": self.threads}

    def close(self) -> None:
        """Release workers (no-op for the serial executor)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """In the calling process, in task order (the default; no pickling, shares in-memory models)."""

    name = "serial"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, task in enumerate(tasks):
            yield i, fn(task)


def _pool_init(threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which cancels the pool
    _set_threads(threads)


class ProcessExecutor(Executor):
    """A local ``ProcessPoolExecutor`` with ``spawn`` workers (fork would copy torch/OpenMP state unsafely).

    Each worker process loads the data and the trained models once (from the output directory's checkpoints)
    and keeps them for every task it runs.
    """

    name = "processes"

    def __init__(self, workers: int, threads: int | None = 1, mp_context: str = "spawn"):
        if workers < 1:
            raise ConfigError(f"workers = {workers}: need at least 1 worker process")
        import multiprocessing

        self.workers = workers
        self.threads = threads
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(mp_context),
                                         initializer=_pool_init, initargs=(threads,))

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        futures = {self._pool.submit(fn, t): i for i, t in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=futures.__getitem__):
                    yield futures[f], f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster (``dask-scheduler`` + ``dask-worker``s), or on a given ``Client``.

    Workers must be able to import ``tsb_aihw`` and read the run's output directory (checkpoints) and the
    dataset: see docs/sweeps.md, "Running on a Dask cluster".
    """

    name = "dask"

    def __init__(self, address: str | None = None, client: Any = None, threads: int | None = 1,
                 timeout: str = "20s"):
        self.threads = threads
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise StackError(f"--scheduler needs Dask distributed, which is not installed ({exc}); install it "
                             f"with: {DASK_HINT}") from None
        if client is None:
            if not address:
                raise ConfigError("a Dask executor needs a scheduler address such as tcp://host:8786")
            try:
                client = Client(address, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {address} ({exc}); start one with "
                                  f"`dask-scheduler` and pass its tcp:// address") from None
            self._own = True
        else:
            self._own = False
        self.client = client
        self.address = address or getattr(client.scheduler, "address", None)
        self.workers = max(1, len(client.scheduler_info().get("workers", {})))

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers, "threads": self.threads, "scheduler": self.address}

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        futures = self.client.map(fn, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for f in as_completed(futures):
                yield index[f.key], f.result()
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None, threads: int | None = 1) -> Executor:
    """``scheduler`` (tcp://...) -> Dask; ``workers`` > 1 -> local process pool; else serial."""
    if scheduler and workers not in (None, 1):
        raise ConfigError("give either --scheduler (a Dask cluster) or --workers (a local process pool), not both")
    if scheduler:
        return DaskExecutor(scheduler, threads=threads)
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: need at least 1 (1 = run in this process)")
    if workers and workers > 1:
        return ProcessExecutor(workers, threads=threads)
    return SerialExecutor(threads)


_CURRENT: list[Executor] = []


@contextlib.contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Make ``executor`` the default of functions called inside the block that take ``executor=None``
    (e.g. ``run_study`` called through ``run_demo``)."""
    _CURRENT.append(executor)
    try:
        yield executor
    finally:
        _CURRENT.pop()


def current_executor() -> Executor | None:
    return _CURRENT[-1] if _CURRENT else None
