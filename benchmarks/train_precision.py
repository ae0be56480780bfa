"""fp32 vs bf16 (autocast) training speed of VGG-8 and ResNet-18 at widths 0.25 / 0.5 / 1 on this machine.

Times the real training step (``train_noise_injection`` with a TrainRecipe: weight noise at sigma 0.1, SGD
nesterov, label smoothing, batch crop+flip, channels-last; only ``precision`` differs) on synthetic CIFAR-sized
batches (the data path costs ~3% of a step: docs/training.md). For each (model, width) one untimed warm-up
window per precision, then ``--rounds`` rounds of one timed window per precision side by side (fp32, bf16,
fp32, bf16, ...: both see the same machine load); images/s per window from the loop's own epoch time. Records
the CPU model name and its bf16-relevant flags (bf16 only pays where amx_bf16 / avx512_bf16 are present), the
torch threads and the load average before and after.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/train_precision.py --threads 2   # the AMX session: full run
    PYTHONPATH=$PWD .venv/bin/python benchmarks/train_precision.py --quick       # a few minutes, smaller batch
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from timing import ratio_summary  # benchmarks/, the script's own folder
from tsb_aihw.models import get_model
from tsb_aihw.training import TrainRecipe, train_noise_injection
from tsb_aihw.utils.io import atomic_write_json
from tsb_aihw.utils.precision import CPU_BF16_FLAGS, cpu_flags, cpu_model_name, native_bf16
from tsb_aihw.utils.provenance import provenance

MODELS = ("vgg8", "resnet18")
WIDTHS = (0.25, 0.5, 1.0)
PRECISIONS = ("fp32", "bf16")
RECORDED_FLAGS = (*CPU_BF16_FLAGS, "avx512f", "avx2", "amx_tile")
NOISE_STD = 0.07776  # sigma 0.1 of nvcim-gaussian (0.7776 * sigma)


def synthetic_loader(batch: int, steps: int, seed: int = 0) -> DataLoader:
    """``steps`` batches of normalised CIFAR-sized images (the content does not change a step's cost)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch * steps, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (batch * steps,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def window(model: torch.nn.Module, loader: DataLoader, recipe: TrainRecipe) -> tuple[float, str]:
    """(images/s of one training epoch over ``loader``, the precision it ran in), on a copy of ``model``."""
    res = train_noise_injection(copy.deepcopy(model), loader, noise_std=NOISE_STD, epochs=1, progress=False,
                                recipe=recipe)
    images = len(loader.dataset)  # type: ignore[arg-type]
    return images / res.history[0]["seconds"], res.precision


def measure(name: str, width: float, batch: int, steps: int, rounds: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = get_model(name, num_classes=10, in_channels=3, width=width, input_size=32, fc_init="fan_in")
    recipe = TrainRecipe(channels_last=True)
    warm = synthetic_loader(batch, 1)
    timed = synthetic_loader(batch, steps)
    for p in PRECISIONS:  # oneDNN builds its kernels on the first steps
        window(model, warm, dataclasses.replace(recipe, precision=p))
    per: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(rounds):
        for p in PRECISIONS:
            ips, ran = window(model, timed, dataclasses.replace(recipe, precision=p))
            assert ran == p
            per[p].append(ips)
    row = {"model": name, "width": width, "batch": batch, "steps_per_window": steps, "rounds": rounds,
           "images_per_s": {p: statistics.median(v) for p, v in per.items()},
           "images_per_s_rounds": per,
           "bf16_over_fp32": ratio_summary(per["bf16"], per["fp32"])}
    print(f"{name:9s} w{width:<5g} fp32 {row['images_per_s']['fp32']:8.1f} img/s  bf16 "
          f"{row['images_per_s']['bf16']:8.1f} img/s  x{row['bf16_over_fp32']['median']:.2f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--widths", nargs="+", type=float, default=list(WIDTHS))
    ap.add_argument("--batch", type=int, default=None, help="images per step (default 256; --quick: 64)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed window (default 4; --quick: 1)")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds (default 3; --quick: 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    ap.add_argument("--quick", action="store_true", help="batch 64, one 1-step window per precision and width")
    ap.add_argument("--note", default="", help="what else ran on the machine (recorded)")
    ap.add_argument("--out", default="benchmarks/train_precision.json")
    args = ap.parse_args(argv)
    batch = args.batch or (64 if args.quick else 256)
    steps = args.steps or (1 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 3)
    torch.set_num_threads(args.threads)
    flags = cpu_flags()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    rows = [measure(m, w, batch, steps, rounds) for m in args.models for w in args.widths]
    out = {
        "cpu": {"model_name": cpu_model_name(), "flags": {f: f in flags for f in RECORDED_FLAGS},
                "native_bf16": native_bf16(torch.device("cpu")), "logical_cpus": os.cpu_count()},
        "settings": {"batch": batch, "steps_per_window": steps, "rounds": rounds, "threads": args.threads,
                     "quick": args.quick, "channels_last": True, "noise_std": NOISE_STD,
                     "data": "synthetic 3x32x32 batches (in memory)", "recipe": "TrainRecipe(channels_last=True)"},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "note": args.note,
        "wall_s": time.perf_counter() - t0,
        "runs": rows,
        "provenance": provenance().to_dict(),
    }
    atomic_write_json(args.out, out)
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
