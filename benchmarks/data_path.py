"""Is the data path the bottleneck? Images/s of the loader (+ augmentation) vs a VGG-8 training step. JSON out.

Measures, on ``--threads`` torch threads, on the offline CIFAR-10 archive's train split:
- ``loader``: ``make_loader`` over the un-augmented in-memory split (per-item index + default collate);
- ``loader+batch_crop_flip``: the same plus :class:`tsb_aihw.data.BatchCropFlip` on each batch (the recipe);
- ``loader+per_item_augment``: the split with torchvision's per-item crop + flip (the trainers' old path);
- ``vgg8_step`` / ``vgg8_step_channels_last``: one noise-injection SGD step (forward + backward + update) of
  VGG-8 width 0.25 at the same batch size, without and with channels-last; ``--models`` adds the same
  channels-last step for other (model, width) pairs, e.g. ``resnet18:0.25`` (per-batch cost for configs).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python benchmarks/data_path.py --out benchmarks/data_path.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import torch

from tsb_aihw.data import BatchCropFlip, get_dataset, make_loader

DATA = "imagefolder:../shared/data/cifar10-train-jpeg.tar.gz"


def images_per_s(run_batch: Callable[[], int], batches: int, warmup: int = 1) -> float:
    """Images per second over ``batches`` calls of ``run_batch`` (which returns its batch size)."""
    for _ in range(warmup):
        run_batch()
    t0 = time.perf_counter()
    seen = sum(run_batch() for _ in range(batches))
    return seen / (time.perf_counter() - t0)


def loader_rate(dataset: torch.utils.data.Dataset, batch_size: int, batches: int,
                augment: BatchCropFlip | None) -> float:
    it = iter(make_loader(dataset, batch_size, shuffle=True, seed=0, drop_last=True))

    def one() -> int:
        x, y = next(it)
        if augment is not None:
            x, y = augment(x, y)
        return len(y)

    return images_per_s(one, batches)


def step_rate(batch_size: int, steps: int, channels_last: bool, name: str = "vgg8", width: float = 0.25) -> float:
    from tsb_aihw.models import get_model
    from tsb_aihw.training import weight_noise
    from tsb_aihw.training.noise_injection import cached_forward

    torch.manual_seed(0)
    model = get_model(name, num_classes=10, in_channels=3, width=width, input_size=32)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)  # type: ignore[call-overload]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def one() -> int:
        opt.zero_grad(set_to_none=True)
        loss_fn(cached_forward(model, x), y).backward()
        opt.step()
        return batch_size

    with weight_noise(model, 0.155):
        model.train()
        return images_per_s(one, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batches", type=int, default=40, help="loader batches timed per data-path variant")
    ap.add_argument("--steps", type=int, default=5, help="training steps timed per model variant")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", nargs="*", default=[], help="extra NAME:WIDTH steps, e.g. resnet18:0.25")
    ap.add_argument("--out", default="benchmarks/data_path.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    plain = get_dataset(DATA, "train", augment=False)
    per_item = get_dataset(DATA, "train")  # torchvision crop + flip per item
    rates = {
        "loader": loader_rate(plain, args.batch_size, args.batches, None),
        "loader+batch_crop_flip": loader_rate(plain, args.batch_size, args.batches, BatchCropFlip(4, True, 0)),
        "loader+per_item_augment": loader_rate(per_item, args.batch_size, max(args.batches // 4, 2), None),
        "vgg8_step": step_rate(args.batch_size, args.steps, channels_last=False),
        "vgg8_step_channels_last": step_rate(args.batch_size, args.steps, channels_last=True),
    }
    for spec in args.models:
        name, width = spec.split(":")
        rates[f"{name}_w{width}_step_channels_last"] = step_rate(args.batch_size, args.steps, True, name, float(width))
    doc = {"images_per_s": rates, "batch_size": args.batch_size, "threads": args.threads,
           "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
           "data": f"{DATA}: {plain.info.split_note}",
           "data_share_of_step": rates["vgg8_step_channels_last"] / rates["loader+batch_crop_flip"]}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    for k, v in rates.items():
        print(f"{k:26s} {v:9.0f} images/s  ({args.batch_size / v * 1000:7.1f} ms per batch)")
    print(f"data path / training step time: {doc['data_share_of_step']:.3f}")


if __name__ == "__main__":
    main()
