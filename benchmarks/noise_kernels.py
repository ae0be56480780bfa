"""Two levers for the statistical mode's output noise, measured against what it uses (docs/performance.md, §4).

The output noise (one Gaussian per tile output) is ~0.6x the product in the statistical mode. Is there a faster
Gaussian generator than torch's ``normal_`` on this CPU (numpy's ziggurat generators), and does ``torch.compile``
(inductor) make the noise + ADC epilogue cheaper by fusing it? Best of ``--rounds`` per kernel, one torch thread,
nanoseconds per float32 value; writes one JSON.

    .venv/bin/python benchmarks/noise_kernels.py --out benchmarks/noise_kernels.json
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from timing import seconds  # benchmarks/, the script's own folder
from tsb_aihw.utils.io import atomic_write_json
from tsb_aihw.utils.provenance import provenance

NUMPY_GENERATORS = ("SFC64", "PCG64", "PCG64DXSM", "Philox", "MT19937")


def ns_per_value(fn: Callable[[], object], n: int, rounds: int) -> float:
    return min(seconds(fn) for _ in range(rounds)) / n * 1e9


def epilogue(y: torch.Tensor) -> torch.Tensor:
    """The statistical mode's ADC epilogue with its noise: add N(0, s), round, clip to the levels, rescale."""
    return (y + 0.5 * torch.randn_like(y)).round_().clamp_(-127, 127) * 0.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=8 << 20, help="float32 values per kernel call")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (it needs a C++ compiler)")
    ap.add_argument("--out", default="benchmarks/noise_kernels.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, r = args.values, args.rounds
    buf = torch.empty(n)
    res: dict[str, float] = {"torch_normal_": ns_per_value(lambda: buf.normal_(0.0, 0.5), n, r)}
    view = buf.numpy()
    for name in NUMPY_GENERATORS:
        gen = np.random.Generator(getattr(np.random, name)(0))
        res[f"numpy_{name}_standard_normal"] = ns_per_value(
            lambda g=gen: g.standard_normal(out=view, dtype=np.float32), n, r)
    y = torch.randn(n)
    res["epilogue_eager"] = ns_per_value(lambda: epilogue(y), n, r)
    compile_s = None
    if not args.no_compile:
        compiled = torch.compile(epilogue)
        t0 = time.perf_counter()
        compiled(y)
        compile_s = time.perf_counter() - t0
        res["epilogue_inductor"] = ns_per_value(lambda: compiled(y), n, r)
    out = {"ns_per_value": res, "compile_seconds": compile_s, "values": n, "rounds": r, "threads": 1,
           "provenance": provenance().to_dict()}
    atomic_write_json(args.out, out)
    for k, v in res.items():
        print(f"{k:34s} {v:6.2f} ns/value")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
