"""Quick ablation of TSB design choices on LeNet-3 / MNIST-5k under NVCIM Gaussian device variation (CPU, minutes).

Flow per variant and chip (docs/notes/tsb-method.md §2, chip-specific block training, §8):
1. train a digital LeNet-3 once (plain Adam, clean weights);
2. a chip = every conv/linear weight + N(0, (0.7776 sigma max|W_layer|)^2), drawn once (the devices
   package's nvcim-gaussian model, emulated in plain torch for speed);
3. insert the block (identity at init) into a copy of that noisy twin and train ONLY the block on the
   training set against that chip (backbone and BN statistics frozen, eval mode);
4. deploy: the block gets the write-verify residual (uniform +-5% of its abs-max, the nvcim-gaussian
   preset's tolerance); accuracy on the held-out test split of the same chip.

Variants: insertion (conv / stage / conv+classifier input), k (8 / 16 / 32), residual vs identity-init
replacement. Reports mean +- std over chips of the accuracy, of the paired gain over the no-block chip and of
the paired difference to the default variant (same chips).

    .venv/bin/python benchmarks/ablation_tsb_design.py --chips 5 --out runs/ablation_tsb_design.json
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from tsb_aihw.data import get_dataset
from tsb_aihw.devices import nvcim_std_factor
from tsb_aihw.models import get_model, insert_tsb
from tsb_aihw.utils.io import atomic_write_json
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.seeding import derive_seed, seed_everything

VARIANTS = {  # name -> insert_tsb kwargs
    "conv k16 residual (default)": dict(where="conv", k=16),
    "stage k16": dict(where="stage", k=16),
    "conv+classifier-input k16": dict(where=["bn1", "bn2", "flatten"], k=16),
    "conv k8": dict(where="conv", k=8),
    "conv k32 (over budget)": dict(where="conv", k=32),
    "conv k16 replacement (identity init)": dict(where="conv", k=16, residual=False),
}


def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = get_dataset("mnist5k", split)
    xs, ys = zip(*[ds[i] for i in range(len(ds))])
    return torch.stack(xs), torch.as_tensor(ys)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    hits = sum((model(x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item() for i in range(0, len(x), 500))
    return hits / len(x)


def train(model: nn.Module, params: list[nn.Parameter], x, y, epochs: int, lr: float, seed: int,
          train_mode: bool) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train(train_mode)
        for idx in torch.randperm(len(x), generator=gen).split(128):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


@torch.no_grad()
def noisy_copy(model: nn.Module, sigma: float, seed: int) -> nn.Module:
    chip = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    factor = nvcim_std_factor(8, 2)
    for m in chip.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight
            w.add_(torch.randn(w.shape, generator=gen) * factor * sigma * w.abs().max())
    return chip


@torch.no_grad()
def verify_residual(block: nn.Module, tol: float, seed: int) -> None:
    w = block.conv.weight
    gen = torch.Generator().manual_seed(seed)
    w.add_((torch.rand(w.shape, generator=gen) * 2 - 1) * tol * w.abs().max())


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * sd:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--chips", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8, help="backbone epochs")
    ap.add_argument("--block-epochs", type=int, default=3)
    ap.add_argument("--block-lr", type=float, default=3e-3)
    ap.add_argument("--verify-tol", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2,
                    help="torch intra-op threads (the documented numbers used 2; 1 is faster on a busy machine)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()

    xtr, ytr = tensors("train")
    xte, yte = tensors("test")
    seed_everything(args.seed)
    base = get_model("lenet3")
    train(base, list(base.parameters()), xtr, ytr, args.epochs, 1e-3, args.seed, train_mode=True)
    clean = accuracy(base, xte, yte)
    print(f"digital LeNet-3: test accuracy {clean:.4f} ({time.time() - t0:.0f} s)")

    rows: dict[str, list[float]] = {"no block": []}
    gains: dict[str, list[float]] = {}
    info: dict[str, dict] = {}
    for c in range(args.chips):
        chip_seed = derive_seed(args.seed, "chip", c)
        chip = noisy_copy(base, args.sigma, chip_seed)
        no_block = accuracy(chip, xte, yte)
        rows["no block"].append(no_block)
        for name, kw in VARIANTS.items():
            model = copy.deepcopy(chip)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # k=32 over budget is intended here
                insert_tsb(model, **kw)
            info[name] = {"k": model.tsb.k, "sites": [s.target for s in model.tsb_sites.values()],
                          "verified_fraction": model.tsb.k ** 2 / model.tsb_config["backbone_weights"]}
            for p in model.parameters():
                p.requires_grad_(False)
            params = list(model.tsb.parameters())
            for p in params:
                p.requires_grad_(True)
            seed_everything(derive_seed(chip_seed, name))
            train(model, params, xtr, ytr, args.block_epochs, args.block_lr, chip_seed, train_mode=False)
            verify_residual(model.tsb, args.verify_tol, derive_seed(chip_seed, "verify", name))
            acc = accuracy(model, xte, yte)
            rows.setdefault(name, []).append(acc)
            gains.setdefault(name, []).append(acc - no_block)
        print(f"chip {c}: no block {no_block:.4f}; " + ", ".join(f"{n.split(' (')[0]} {rows[n][-1]:.4f}"
                                                             for n in VARIANTS) + f" ({time.time() - t0:.0f} s)")

    print(f"\nLeNet-3 on mnist5k (train 3500 / test 1000), NVCIM sigma={args.sigma}, {args.chips} chips, "
          f"digital {100 * clean:.2f}%")
    default = next(iter(VARIANTS))
    print("| variant | k | sites | verified / backbone | chip accuracy % | gain vs no block (pp) "
          "| vs default (pp) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| no block | - | - | 0 | {mean_std(rows['no block'])} | - | - |")
    for name in VARIANTS:
        i = info[name]
        paired = [a - b for a, b in zip(rows[name], rows[default])]
        print(f"| {name} | {i['k']} | {', '.join(i['sites'])} | {100 * i['verified_fraction']:.3f}% | "
              f"{mean_std(rows[name])} | {mean_std(gains[name])} | "
              f"{'-' if name == default else mean_std(paired)} |")
    print(f"total {time.time() - t0:.0f} s")
    if args.out:
        atomic_write_json(args.out, {"args": vars(args), "clean_accuracy": clean, "accuracy": rows, "gain": gains,
                                     "variants": info, "provenance": provenance().to_dict(), "seconds": time.time() - t0})


if __name__ == "__main__":
    main()
