"""Keep freed memory in the process instead of handing it back to the kernel after every batch.

glibc serves every allocation above its mmap threshold (at most 32 MiB, adjusted upwards as large blocks are
freed) with a fresh ``mmap`` and frees it with ``munmap``, so each batch's activations, unfolded inputs and
noise draws arrive as new pages that the kernel faults in and zeroes. In a chip evaluation that is a quarter
to a third of the CPU time (system time; docs/performance.md, "Study overheads", measured by
``benchmarks/malloc_eval.py``). With ``mmap`` off and the heap never trimmed, freed blocks are reused by the
next batch; peak memory measured the same. Numbers do not change (allocation only).

The command line and every cell worker call :func:`keep_freed_memory`; a notebook may call it too. Set
``TSB_AIHW_MALLOC=default`` to keep glibc's behaviour. Without glibc (macOS, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import os

ENV_VAR = "TSB_AIHW_MALLOC"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
TRIM_THRESHOLD = 2**31 - 1  # (a C int) give the top of the heap back only past 2 GiB free

_state: str | None = None


def keep_freed_memory() -> str:
    """Switch glibc to reuse freed blocks (once per process). Returns what was done: ``"kept"``,
    ``"default"`` (env ``TSB_AIHW_MALLOC=default``) or ``"unavailable"`` (no glibc ``mallopt``)."""
    global _state
    if _state is not None:
        return _state
    wanted = os.environ.get(ENV_VAR, "keep").strip().lower()
    if wanted not in ("keep", "default"):
        from tsb_aihw.errors import ConfigError

        raise ConfigError(f"{ENV_VAR}={wanted!r}: use keep (reuse freed memory, the default) or default "
                          "(glibc's own behaviour)")
    if wanted == "default":
        _state = "default"
        return _state
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        _state = "unavailable"
        return _state
    ok = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state = "kept" if ok else "unavailable"
    return _state
