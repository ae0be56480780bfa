"""Seeds for every generator a run touches, so a seed reproduces a run bit for bit on the same machine.

What must hold for two runs to give identical bits (measured, see docs/reliability.md):
- every random step is seeded from (run seed, step keys) with ``derive_seed``, never from "whatever the
  global generator holds now" (that depends on what ran before, e.g. on a resumed run that skipped training);
- a DataLoader's shuffle generator is reset per use (``reseed_loader``): it advances with every epoch;
- the same torch intra-op thread count: CPU kernels split reductions by thread, so 1 and 2 threads give
  different float sums (lenet3, one epoch: different weights). ``runtime_settings`` records it;
- nothing drawn from torch's global generator before it is seeded (torch seeds it randomly per process).
"""
from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (AIHWKit draws its noise from torch's global generator) and ask torch for
    deterministic kernels where it has a choice (``warn_only``: an op without one warns instead of failing).

    torch 2.10 seeds its global generator randomly in every new process, so anything drawn before this call
    (e.g. a model's initial weights) differs from run to run: seed first, then build."""
    deterministic_kernels()
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def deterministic_kernels() -> None:
    """Ask torch for deterministic kernels where it has a choice (``warn_only``: an op without one warns).

    Set by :func:`seed_everything` and by every study as it starts, so a re-run that trains and computes nothing
    evaluates (and records in ``provenance.runtime``) under the same setting as the run that did."""
    torch.use_deterministic_algorithms(True, warn_only=True)


def derive_seed(base: int, *keys: int | str) -> int:
    """A stable child seed for (base, keys...), e.g. one per Monte-Carlo chip, independent of run order.

    sha256 of the repr, not ``hash()``: Python salts string hashes per process (PYTHONHASHSEED)."""
    h = hashlib.sha256(repr((int(base),) + tuple(keys)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def reseed_loader(loader: Any, seed: int) -> Any:
    """Reset the shuffle generator of a loader built by ``make_loader`` (or any DataLoader with a generator).

    A DataLoader's generator advances every epoch, so the batches a training step sees would otherwise
    depend on how often the loader was iterated before. Loaders without their own generator shuffle from
    torch's global generator, which ``seed_everything`` covers. Returns the loader."""
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(int(seed))
    return loader


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with python/numpy/torch seeded from ``seed`` and restore their previous states afterwards,
    so the block is reproducible and the code around it is not disturbed."""
    states = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    seed_everything(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """Settings besides the seed that change the bits of a CPU run (``provenance.runtime`` of every results file)."""

    torch_num_threads: int
    torch_num_interop_threads: int
    deterministic_algorithms: bool
    mkldnn_enabled: bool
    env: dict[str, str]  # the thread and hashing variables that were set


def runtime_settings() -> RuntimeSettings:
    """This process's :class:`RuntimeSettings`."""
    return RuntimeSettings(
        torch_num_threads=torch.get_num_threads(),
        torch_num_interop_threads=torch.get_num_interop_threads(),
        deterministic_algorithms=torch.are_deterministic_algorithms_enabled(),
        mkldnn_enabled=bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONHASHSEED",
                                        "CUBLAS_WORKSPACE_CONFIG") if k in os.environ},
    )
