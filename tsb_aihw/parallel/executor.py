"""Executors for independent cells: serial (in-process), a local process pool, or Dask distributed.

Every executor has one job: ``run(fn, tasks)`` yields ``(index, result)`` pairs as tasks finish, so the caller
can save each result at once (a killed run keeps everything that finished). ``fn`` must be a picklable
top-level function and tasks small picklable values: what travels to a worker is the task, never a model.

Results do not depend on the executor as long as the task function seeds everything from the task itself
(see ``tsb_aihw.parallel.cells.run_chip_task``) and uses the same number of torch threads.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence

from tsb_aihw.errors import ConfigError, StackError, TSBError
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.text import short_repr

DASK_HINT = "pip install 'tsb-aihw[dask]'  (or: pip install 'dask[distributed]')"
#: transports a Dask scheduler address may use (distributed.comm's registry)
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_ADDRESS = re.compile(r"^(?P<scheme>[a-z]+)://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+)(:(?P<port>\d{1,5}))?$")
RESUME_HINT = "finished cells are saved: re-run the same command to resume"


def check_threads(threads: Any, what: str = "--threads") -> int | None:
    """``threads`` as an int >= 1 (or None: leave torch's setting); ConfigError for 0, negatives, non-ints.

    torch.set_num_threads(-1) raises a RuntimeError inside a worker, far from the command line that asked.
    """
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{what} {short_repr(threads)}: torch threads per cell must be an integer >= 1 "
                          "(leave it out for the default)")
    return threads


def check_workers(workers: Any) -> int | None:
    """``workers`` as an int >= 1 or None; ConfigError otherwise."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers {short_repr(workers)}: need at least 1, as an integer (1 = run in this process)")
    return workers


def check_scheduler_address(address: Any) -> str:
    """A Dask scheduler address ``scheme://host[:port]``; a one-line ConfigError for anything else.

    Checked before Dask is imported or contacted, so a typo is not reported as a missing package or a
    20-second connection timeout.
    """
    example = "e.g. tcp://10.0.0.5:8786 (start a scheduler with `dask-scheduler`)"
    if not isinstance(address, str) or not address.strip():
        raise ConfigError(f"--scheduler {short_repr(address)}: give a Dask scheduler address, {example}")
    text = address.strip()
    m = _ADDRESS.match(text)
    if m is None or m["scheme"] not in SCHEDULER_SCHEMES:
        scheme = text.split("://", 1)[0] if "://" in text else None
        why = (f"unknown transport {short_repr(scheme)} (use one of {', '.join(SCHEDULER_SCHEMES)})"
               if scheme and scheme not in SCHEDULER_SCHEMES else "not of the form scheme://host:port")
        raise ConfigError(f"--scheduler {short_repr(text)}: {why}; {example}")
    if m["port"] is not None and not 0 < int(m["port"]) < 65536:
        raise ConfigError(f"--scheduler {short_repr(text)}: port {m['port']} is out of range (1-65535); {example}")
    return text


def _set_threads(threads: int | None) -> None:
    n = check_threads(threads)
    if n is not None:
        import torch

        torch.set_num_threads(n)


def _worker_died(exc: BaseException, where: str) -> TSBError:
    return TSBError(f"a {where} worker process died while running a cell ({type(exc).__name__}; e.g. killed "
                    f"for memory or by a signal); {RESUME_HINT} (with fewer --workers or more memory if it ran out)")


class Executor:
    """Base class: ``run(fn, tasks)`` yields ``(index, fn(tasks[index]))`` in completion order."""

    name = "base"
    workers = 1
    threads: int | None = None  # torch threads inside each task (None: leave as is); task functions read it

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def describe(self) -> JsonObject:
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
        self.threads = check_threads(threads)

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, task in enumerate(tasks):
            yield i, fn(task)


def _pool_init(threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which cancels the pool
    _die_with_parent()
    _set_threads(threads)


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the parent dies (killed, OOM), instead of finishing its cell for
    nobody (a CIFAR-10 cell is minutes of CPU). Elsewhere workers exit at their next task, as before."""
    import ctypes
    import multiprocessing

    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return
    pr_set_pdeathsig = 1
    prctl(pr_set_pdeathsig, signal.SIGTERM)
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the parent died before the call above
        os._exit(1)


class ProcessExecutor(Executor):
    """A local ``ProcessPoolExecutor`` with ``spawn`` workers (fork would copy torch/OpenMP state unsafely).

    Each worker process loads the data and the trained models once (from the output directory's checkpoints)
    and keeps them for every task it runs.
    """

    name = "processes"

    def __init__(self, workers: int, threads: int | None = 1, mp_context: str = "spawn"):
        import multiprocessing

        if check_workers(workers) is None:
            raise ConfigError("ProcessExecutor needs workers >= 1")
        self.workers = workers
        self.threads = check_threads(threads)
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(mp_context),
                                         initializer=_pool_init, initargs=(threads,))

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yields as tasks finish. At most one task per worker is submitted at a time: the pool hands tasks it
        holds to its workers' queue, where they can no longer be cancelled, so a Ctrl-C used to leave cells
        computing for nobody. Now a Ctrl-C lets the running cells finish and yields them (a CIFAR-10 cell is
        minutes of work the caller saves), then goes on as KeyboardInterrupt; a second Ctrl-C drops them."""
        queue = iter(enumerate(tasks))
        running: dict[Future[Any], int] = {}

        def submit_next() -> None:
            for i, task in queue:
                running[self._pool.submit(fn, task)] = i
                return

        for _ in range(self.workers):
            submit_next()
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=running.__getitem__):
                    i = running.pop(f)
                    yield i, _local_result(f)
                    submit_next()
        except KeyboardInterrupt:
            if running:
                print(f"interrupted: finishing the {len(running)} running cell(s) so that their work is saved "
                      "(Ctrl-C again to drop them)", file=sys.stderr, flush=True)
            try:
                for f in as_completed(list(running)):
                    yield running.pop(f), _local_result(f)
            except KeyboardInterrupt:
                self._terminate()
            raise
        finally:
            for f in running:
                f.cancel()

    def _terminate(self) -> None:
        """Stop the workers now (a second Ctrl-C): their running cells are dropped."""
        for proc in list(getattr(self._pool, "_processes", {}).values()):
            proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _local_result(f: Future[Any]) -> Any:
    try:
        return f.result()
    except BrokenProcessPool as exc:
        raise _worker_died(exc, "local") from None


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster (``dask-scheduler`` + ``dask-worker``s), or on a given ``Client``.

    Workers must be able to import ``tsb_aihw`` and read the run's output directory (checkpoints) and the
    dataset: see docs/sweeps.md, "Running on a Dask cluster".
    """

    name = "dask"

    def __init__(self, address: str | None = None, client: Any = None, threads: int | None = 1,
                 timeout: str = "20s"):
        self.threads = check_threads(threads)
        if client is None:
            address = check_scheduler_address(address)
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

    def describe(self) -> JsonObject:
        return {"executor": self.name, "workers": self.workers, "threads": self.threads, "scheduler": self.address}

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        from dask.distributed import as_completed

        try:
            from distributed import KilledWorker
        except ImportError:  # pragma: no cover - dask.distributed without the distributed package name
            KilledWorker = ()  # type: ignore[assignment,misc]  # noqa: N806
        futures = self.client.map(fn, list(tasks), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for f in as_completed(futures):
                try:
                    result = f.result()
                except KilledWorker as exc:
                    raise _worker_died(exc, "Dask") from None
                yield index[f.key], result
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(workers: int | None = None, scheduler: str | None = None, threads: int | None = 1) -> Executor:
    """``scheduler`` (tcp://...) -> Dask; ``workers`` > 1 -> local process pool; else serial."""
    workers = check_workers(workers)
    threads = check_threads(threads)
    if scheduler is not None:
        scheduler = check_scheduler_address(scheduler)
    if scheduler and workers not in (None, 1):
        raise ConfigError("give either --scheduler (a Dask cluster) or --workers (a local process pool), not both")
    if scheduler:
        return DaskExecutor(scheduler, threads=threads)
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
