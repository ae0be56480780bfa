"""The one cell runner: every command's independent cells go through ``run_cells``.

A task is a small picklable value with a ``key`` (its full fingerprint); ``fn(task)`` computes it anywhere
(in-process, a process pool, Dask). Finished cells are skipped, each new one is saved in the store the
moment it finishes, so a killed run keeps everything that finished and a re-run resumes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Protocol, Sequence

from tqdm.auto import tqdm

from tsb_aihw.parallel.executor import Executor, SerialExecutor, current_executor
from tsb_aihw.utils.io import JsonObject, json_fingerprint
from tsb_aihw.utils.store import ResultStore

_LIVE: dict[Hashable, Any] = {}


def live_context(key: Hashable, build: Callable[[], Any]) -> Any:
    """The per-process state a task needs (data, trained models), built once per process: the live object the
    parent shared with :func:`sharing`, else ``build()`` (a worker loading the parent's checkpoints)."""
    if key not in _LIVE:
        _LIVE[key] = build()
    return _LIVE[key]


@contextlib.contextmanager
def sharing(key: Hashable, value: Any) -> Iterator[None]:
    """Let tasks run in this process use ``value`` under ``key`` instead of rebuilding it; forgotten afterwards."""
    _LIVE[key] = value
    try:
        yield
    finally:
        _LIVE.pop(key, None)


@contextlib.contextmanager
def cell_process(threads: int | None) -> Iterator[None]:
    """The set-up every cell runs in, whatever the command and wherever it runs: freed memory kept for reuse
    (pool and Dask workers too, once per process) and ``threads`` torch threads (None: leave them), restored
    afterwards so an in-process cell leaves the caller as it was."""
    import torch

    from tsb_aihw.parallel.executor import check_threads
    from tsb_aihw.utils.memory import keep_freed_memory

    keep_freed_memory()
    before, wanted = torch.get_num_threads(), check_threads(threads, "cell threads")
    if wanted is not None:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Task(Protocol):
    @property
    def key(self) -> str: ...


@dataclass(frozen=True, kw_only=True)
class ChipTask:
    """One chip of a command (a study's (method, chip) cell, a drift study's (preset, chip), a refresh study's
    chip), as it travels to a worker: its key in the store, the config and the place (``where``: an output
    directory or a model file) its process context is built from, the chip and the torch threads it runs with.
    A subclass says how that context is built (once per process) and what one chip computes on it;
    :func:`run_chip_task` is the one flow all of them run through."""

    key: str
    config: JsonObject = field(hash=False)
    chip: int
    threads: int | None = None  # torch threads while the cell runs (None: leave as is)

    @property
    def where(self) -> str:
        raise NotImplementedError

    @classmethod
    def context_key(cls, where: str, config: JsonObject) -> Hashable:
        """The key its process context is shared (:func:`sharing`) and cached (:func:`live_context`) under."""
        return (cls.__name__, where, json_fingerprint(config))

    def build_context(self) -> Any:
        """This task's process context, built from its config and ``where`` (never trained there)."""
        raise NotImplementedError

    def compute(self, ctx: Any) -> Any:
        """This chip's cell on the process context ``ctx``: depends only on the task."""
        raise NotImplementedError


def run_chip_task(task: ChipTask) -> Any:
    """Compute one chip's cell wherever this is called (any executor): the cell process set-up, the process
    context (the parent's live one, else built once per process), then the task's computation."""
    with cell_process(task.threads):
        ctx = live_context(task.context_key(task.where, task.config), task.build_context)
        return task.compute(ctx)


def _plain(result: Any) -> Any:
    return result.to_dict() if hasattr(result, "to_dict") else result


def run_cells(fn: Callable[[Any], Any], tasks: Sequence[Task], store: ResultStore, executor: Executor | None = None,
              *, desc: str = "cells", progress: bool = True) -> int:
    """Run every task whose key is not in ``store`` on ``executor`` (default: the one set by
    ``use_executor``, else in-process); returns how many cells were already finished."""
    keys = [t.key for t in tasks]
    if len(set(keys)) != len(keys):
        raise RuntimeError("run_cells got two tasks with the same key")
    todo = [t for t in tasks if t.key not in store]
    done = len(tasks) - len(todo)
    ex = executor or current_executor() or SerialExecutor()
    bar = tqdm(total=len(tasks), initial=done, desc=desc, disable=not progress)
    try:  # a dead worker is one line from the executor ("finished cells are saved: re-run ... to resume")
        for i, result in ex.run(fn, todo):
            store.put(todo[i].key, _plain(result))
            bar.update(1)
    finally:
        bar.close()
    return done
