"""Does plain noise injection collapse on VGG-8 at sigma 0.2-0.3, and what fixes it? Short runs, JSON out.

Trains VGG-8 (width 0.25) from scratch on a seeded subset of the CIFAR-10 archive's train split with
noise-injection std ``0.7776 * sigma`` (``preset.training_noise_std`` of ``nvcim-gaussian``) for each
(variant, sigma), then reports held-out (val split) accuracy: clean digital, and on ``--chips`` programmed
nvcim-gaussian chips at the training sigma (one noisy draw per weight per chip, no write-verify).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/noise_injection_sigma.py \\
        --variants sgd sgd-warmup --sigmas 0.1 0.2 0.3 --out benchmarks/noise_injection_sigma.json

Each finished run is written to the JSON at once, so an interrupted sweep keeps what it measured; runs
already in the file (same variant, sigma and settings) are skipped.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import torch

from tsb_aihw.data import TensorImageDataset, get_dataset, make_loader
from tsb_aihw.training import train_noise_injection
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.seeding import derive_seed, seed_everything

DATA = "imagefolder:../shared/data/cifar10-train-jpeg.tar.gz"
BASE = TrainRecipe(channels_last=True)  # the fast recipe (defaults), channels-last is ~20% faster on CPU


@dataclass(frozen=True)
class Variant:
    """One training setup: a recipe (None = the trainer's defaults: Adam 1e-3, per-epoch cosine, per-item
    augmentation) and whether the Linear layers get a fan-in init (``fc_fan_in``) instead of VGG8's
    NF_Training fan-out init, which makes train-mode logits ~30x too large at the start."""

    recipe: TrainRecipe | None
    fc_fan_in: bool = False


VARIANTS: dict[str, Variant] = {
    "adam-legacy": Variant(None),
    "sgd": Variant(BASE),
    "sgd-warmup": Variant(dataclasses.replace(BASE, noise_warmup_fraction=0.5)),
    "sgd-clip": Variant(dataclasses.replace(BASE, grad_clip=2.0)),
    "sgd-fanin": Variant(BASE, fc_fan_in=True),
    "sgd-warmup-fanin": Variant(dataclasses.replace(BASE, noise_warmup_fraction=0.5), fc_fan_in=True),
    "sgd-warmup-clip-fanin": Variant(dataclasses.replace(BASE, noise_warmup_fraction=0.5, grad_clip=1.0),
                                     fc_fan_in=True),
    "sgd-lr0.02": Variant(dataclasses.replace(BASE, lr=0.02)),
    "sgd-nols": Variant(dataclasses.replace(BASE, label_smoothing=0.0)),
}


def subset(ds: TensorImageDataset, n: int, seed: int) -> TensorImageDataset:
    """A seeded random ``n``-image subset (same images for every variant and sigma)."""
    if n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    info = dataclasses.replace(ds.info, size=n, split_note=f"{ds.info.split_note}; seeded {n:,}-image subset")
    return TensorImageDataset(ds.images[idx], ds.targets[idx], info, ds.indices[idx.numpy()], ds.transform)


def chip_accuracy(model: torch.nn.Module, sigma: float, loader: Any, chips: int, seed: int) -> list[float]:
    """Val accuracy on ``chips`` programmed nvcim-gaussian chips (no write-verify) at ``sigma``."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation import evaluate_accuracy

    preset = load_preset("nvcim-gaussian", noise__sigma=sigma)
    out = []
    for chip in range(chips):
        analog = to_analog(model, preset, verify="none")
        torch.manual_seed(derive_seed(seed, "chip", chip))
        analog.program_analog_weights()  # type: ignore[operator]
        out.append(evaluate_accuracy(analog, loader))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=["sgd", "sgd-warmup"], choices=sorted(VARIANTS))
    ap.add_argument("--sigmas", nargs="+", type=float, default=[0.1, 0.2, 0.3])
    ap.add_argument("--subset", type=int, default=10_000, help="training images (seeded subset)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--chips", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/noise_injection_sigma.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model

    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
    settings = {"subset": args.subset, "epochs": args.epochs, "batch_size": args.batch_size,
                "val_images": args.val_images, "chips": args.chips, "seed": args.seed, "threads": args.threads}
    val = subset(get_dataset(DATA, "val"), args.val_images, derive_seed(args.seed, "val"))
    val_loader = make_loader(val, 500)
    for name in args.variants:
        variant = VARIANTS[name]
        recipe = variant.recipe
        train = subset(get_dataset(DATA, "train", augment=None if recipe is None else False), args.subset,
                       derive_seed(args.seed, "train"))
        loader = make_loader(train, args.batch_size, shuffle=True, seed=args.seed, drop_last=True)
        for sigma in args.sigmas:
            if any(r["variant"] == name and r["sigma"] == sigma and r["settings"] == settings for r in doc["runs"]):
                print(f"skip {name} sigma={sigma} (in {out})")
                continue
            std = load_preset("nvcim-gaussian", noise__sigma=sigma).training_noise_std if sigma > 0 else 0.0
            seed_everything(args.seed)
            model = get_model("vgg8", num_classes=10, in_channels=3, width=0.25, input_size=32,
                              fc_init="fan_in" if variant.fc_fan_in else "fan_out")
            t0 = time.perf_counter()
            res = train_noise_injection(model, loader, val_loader, noise_std=std, epochs=args.epochs,
                                        seed=args.seed, progress=False, recipe=recipe)
            train_s = time.perf_counter() - t0
            eval_sigmas = [sigma] if sigma > 0 else [s for s in args.sigmas if s > 0] or [0.2]
            chips = {str(s): chip_accuracy(model, s, val_loader, args.chips, args.seed) for s in eval_sigmas}
            run = {"variant": name, "sigma": sigma, "noise_std": std, "settings": settings,
                   "recipe": recipe.to_dict() if recipe else None,
                   "fc_fan_in": variant.fc_fan_in, "train_s": train_s,
                   "s_per_step": train_s / (args.epochs * len(loader)),
                   "clean_val_acc": res.best_val_acc, "best_epoch": res.best_epoch,
                   "history": res.history,
                   "chip_val_acc": chips,
                   "chip_val_acc_mean": {s: sum(v) / len(v) for s, v in chips.items()}}
            doc["runs"].append(run)
            doc["data"] = f"{DATA}: train {train.info.split_note}; val {val.info.split_note}"
            out.write_text(json.dumps(doc, indent=1))
            print(f"{name:12s} sigma={sigma:.2f} std={std:.4f} clean={res.best_val_acc:.4f} "
                  f"chips={run['chip_val_acc_mean']} train_s={train_s:.0f} "
                  f"last_loss={res.final_train_loss:.3f}", flush=True)


if __name__ == "__main__":
    main()
