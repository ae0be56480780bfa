"""Does bf16 training cost accuracy? >= 3 seeds per precision of one short CIFAR-10 noise-injection run.

Each (precision, seed) trains the same model from the same seed with the same TrainRecipe (defaults: SGD
nesterov one-cycle, label smoothing, batch crop+flip, channels-last) except ``precision``, at training noise
0.7776 * sigma, on a seeded subset of the training split, and reports the **last** epoch's clean accuracy on
a seeded subset of the val split (no best-epoch selection on it). The verdict compares the difference of the
precision means with the seed spread: ``within_seed_spread`` is |mean(bf16) - mean(fp32)| <= the larger of the
two seed standard deviations. Every finished run is written to the JSON at once; runs already there with the
same settings are skipped, so an interrupted session resumes.

    # the AMX session (about 15 min on a 2-core AMX Xeon: fp32 ~264, bf16 ~870 images/s at width 0.5)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/precision_accuracy.py --threads 2
    # a smoke run anywhere (seconds): digits, lenet3
    PYTHONPATH=$PWD .venv/bin/python benchmarks/precision_accuracy.py --smoke --out /tmp/precision_accuracy.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from tsb_aihw.data import get_dataset, make_loader
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.models import get_model
from tsb_aihw.training import TrainRecipe, train_noise_injection
from tsb_aihw.utils.io import atomic_write_json
from tsb_aihw.utils.precision import CPU_BF16_FLAGS, cpu_flags, cpu_model_name
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.seeding import derive_seed, seed_everything

CIFAR = "imagefolder:../shared/data/cifar10-train-jpeg.tar.gz"
SMOKE = {"data": "digits", "model": "lenet3", "width": 0.5, "train_images": 500, "val_images": 200, "epochs": 1,
         "seeds": [0], "batch": 64}


def subset(ds: Any, n: int, seed: int) -> Any:
    """The same seeded ``n``-image subset for every run (all of ``ds`` when it is smaller)."""
    if n >= len(ds):
        return ds
    return Subset(ds, torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].tolist())


def summary(accs: dict[str, list[float]]) -> dict[str, Any]:
    """Mean and seed spread per precision, the bf16 - fp32 difference and the verdict (needs >= 2 seeds each)."""
    per = {p: {"n": len(v), "mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None}
           for p, v in accs.items() if v}
    out: dict[str, Any] = {"per_precision": per}
    if {"fp32", "bf16"} <= per.keys() and per["fp32"]["std"] is not None and per["bf16"]["std"] is not None:
        diff = per["bf16"]["mean"] - per["fp32"]["mean"]
        spread = max(per["fp32"]["std"], per["bf16"]["std"])
        out |= {"bf16_minus_fp32": diff, "seed_spread": spread, "within_seed_spread": abs(diff) <= spread}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=CIFAR)
    ap.add_argument("--model", default="vgg8")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--train-images", type=int, default=10_000)
    ap.add_argument("--val-images", type=int, default=5_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sigma", type=float, default=0.1, help="training noise std = 0.7776 * sigma")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--smoke", action="store_true", help=f"tiny settings for a check: {SMOKE}")
    ap.add_argument("--out", default="benchmarks/precision_accuracy.json")
    args = ap.parse_args(argv)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    torch.set_num_threads(args.threads)
    settings = {k: getattr(args, k) for k in ("data", "model", "width", "train_images", "val_images", "epochs",
                                              "batch", "sigma", "threads")}
    out = Path(args.out)
    doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"runs": []}
    train = subset(get_dataset(args.data, "train", augment=False), args.train_images, derive_seed(0, "train"))
    val = subset(get_dataset(args.data, "val"), args.val_images, derive_seed(0, "val"))
    info = get_dataset(args.data, "val").info
    val_loader = make_loader(val, 500)
    extra = {"fc_init": "fan_in"} if args.model in ("vgg8", "resnet18") else {}
    for seed in args.seeds:
        for p in args.precisions:
            if any(r["settings"] == settings and r["seed"] == seed and r["precision"] == p for r in doc["runs"]):
                print(f"skip {p} seed {seed} (in {out})")
                continue
            seed_everything(seed)
            model = get_model(args.model, num_classes=info.num_classes, in_channels=info.in_channels,
                              width=args.width, input_size=info.image_size[0], **extra)
            recipe = TrainRecipe(channels_last=True, precision=p, flip=args.data != "digits")
            t0 = time.perf_counter()
            res = train_noise_injection(model, make_loader(train, args.batch, shuffle=True, seed=seed, drop_last=True),
                                        noise_std=0.7776 * args.sigma, epochs=args.epochs, seed=seed,
                                        progress=False, recipe=recipe)
            train_s = time.perf_counter() - t0
            acc = evaluate_accuracy(model, val_loader)
            doc["runs"].append({"settings": settings, "seed": seed, "precision": res.precision, "val_acc": acc,
                                "train_s": train_s, "final_train_loss": res.final_train_loss})
            print(f"{p} seed {seed}: val_acc {acc:.4f}  train {train_s:.0f} s", flush=True)
            doc |= {"cpu": {"model_name": cpu_model_name(),
                            "flags": {f: f in cpu_flags() for f in (*CPU_BF16_FLAGS, "avx2")}},
                    "provenance": provenance().to_dict()}
            atomic_write_json(out, doc)
    accs = {p: [r["val_acc"] for r in doc["runs"] if r["settings"] == settings and r["precision"] == p]
            for p in args.precisions}
    doc["summary"] = summary(accs) | {"settings": settings}
    atomic_write_json(out, doc)
    print(json.dumps(doc["summary"], indent=1))
    return doc


if __name__ == "__main__":
    main()
