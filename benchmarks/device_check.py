"""GPU readiness check: the fast analog paths against AIHWKit on CUDA, a short training, one chip of a study.

Why: the project is developed on CPUs; this is the one script to run on a CUDA machine (under 8 minutes on
one GPU) to see that every path runs there and how fast. Uses public functions only (``to_analog``,
``program_analog_weights``, ``fast_forward``, ``evaluate_accuracy``, ``train_noise_injection``,
``read_back``, ``build_block_cache``, ``train_block``), not the pipeline. Each section records its result
or its error, so one failure does not hide the others. Writes one JSON (``--out``, default
``$OUT/device_check.json`` if ``$OUT`` is set, else ``benchmarks/device_check.json``).

Without CUDA it prints one line saying so and exits 0.

    .venv/bin/python benchmarks/device_check.py
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

HERE = Path(__file__).resolve().parent


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> list[float]:
    fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def _section(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]], deadline: float) -> None:
    if time.perf_counter() > deadline:
        results[name] = {"ok": False, "error": "skipped: time budget spent"}
        return
    t0 = time.perf_counter()
    try:
        results[name] = {"ok": True, **fn()}
    except Exception as exc:  # noqa: BLE001 - the point is to report every failure, not stop at the first
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=8)}
    results[name]["seconds"] = time.perf_counter() - t0
    print(f"{name}: {'ok' if results[name]['ok'] else results[name]['error']} "
          f"({results[name]['seconds']:.1f} s)", flush=True)


@torch.no_grad()
def forward_check(dev: torch.device, width: float, batch: int, repeats: int) -> dict[str, Any]:
    """vgg8 on a pcm chip on the GPU: exact mode vs AIHWKit at one seed, statistical mode's error spread,
    and the forward times of digital / AIHWKit / exact / statistical."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.fast_eval import fast_forward
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model

    torch.manual_seed(0)
    digital = get_model("vgg8", num_classes=10, in_channels=3, width=width, input_size=32).eval()
    analog = to_analog(digital, load_preset("pcm"), verify="none").eval().to(dev)
    digital.to(dev)
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    torch.manual_seed(1)
    ref = analog(x)
    out: dict[str, Any] = {"width": width, "batch": batch,
                           "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)}
    for mode in ("exact", "statistical"):
        torch.manual_seed(1 if mode == "exact" else 2)
        with fast_forward(analog, mode) as skipped:
            y = analog(x)
        out[mode] = {"skipped_layers": skipped,
                     "fraction_close_to_aihwkit": float(torch.isclose(y, ref, rtol=1e-4, atol=1e-4).float().mean()),
                     "logit_rms_difference": float((y - ref).pow(2).mean().sqrt()),
                     "logit_rms": float(ref.pow(2).mean().sqrt())}
    torch.manual_seed(3)
    ref2 = analog(x)
    out["aihwkit_seed_to_seed_rms_difference"] = float((ref2 - ref).pow(2).mean().sqrt())
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = {"digital": _timed(lambda: digital(x), repeats, sync), "aihwkit": _timed(lambda: analog(x), repeats, sync)}
    for mode in ("exact", "statistical"):
        with fast_forward(analog, mode):
            times[mode] = _timed(lambda: analog(x), repeats, sync)
    med = {k: statistics.median(v) for k, v in times.items()}
    out["seconds"] = times
    out["over_digital"] = {k: med[k] / med["digital"] for k in med}
    return out


def training_check(dev: torch.device, epochs: int) -> dict[str, Any]:
    """A short noise-injection training of lenet3 on mnist5k on the GPU."""
    from tsb_aihw.data import get_dataset, make_loader
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation import evaluate_accuracy
    from tsb_aihw.models import get_model
    from tsb_aihw.training import train_noise_injection

    train, test = get_dataset("mnist5k", "train"), get_dataset("mnist5k", "test")
    torch.manual_seed(0)
    model = get_model("lenet3", num_classes=10, in_channels=1, input_size=32)
    res = train_noise_injection(model, make_loader(train, 128, shuffle=True), noise_std=load_preset("pcm")
                                .training_noise_std, epochs=epochs, lr=3e-3, device=dev, progress=False)
    return {"epochs": epochs, "seconds_per_epoch": res.wall_time_s / res.epochs_run,
            "test_accuracy": evaluate_accuracy(model, make_loader(test, 500), device=dev),
            "model": model.cpu()}


def chip_check(dev: torch.device, backbone: torch.nn.Module) -> dict[str, Any]:
    """One chip of a small study on the GPU: insert the block, program (block verified), drift, evaluate in
    every fast mode, read back, train the block from the cache, evaluate the twin."""
    from tsb_aihw.analog import load_read_back, read_back, to_analog
    from tsb_aihw.data import get_dataset, make_loader
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation import evaluate_accuracy
    from tsb_aihw.models import insert_tsb
    from tsb_aihw.models.insertion import get_tsb
    from tsb_aihw.training import train_block
    from tsb_aihw.training.block_cache import build_block_cache

    train, test = get_dataset("mnist5k", "train", augment=False), get_dataset("mnist5k", "test")
    loader = make_loader(test, 500)
    model = insert_tsb(copy.deepcopy(backbone).eval())
    out: dict[str, Any] = {}
    for preset in ("pcm", "nvcim-gaussian"):
        torch.manual_seed(0)
        analog = to_analog(model, load_preset(preset), verify="tsb").eval().to(dev)
        t0 = time.perf_counter()
        analog.program_analog_weights()
        analog.drift_analog_weights(86400.0)
        row: dict[str, Any] = {"program_drift_seconds": time.perf_counter() - t0}
        for mode in ("off", "exact", "statistical"):
            t0 = time.perf_counter()
            row[f"accuracy_{mode}"] = evaluate_accuracy(analog, loader, device=dev, fast=mode)
            row[f"eval_seconds_{mode}"] = time.perf_counter() - t0
        twin = copy.deepcopy(model).to(dev)
        load_read_back(twin, {k: v.to(dev) for k, v in read_back(analog, t=None).items() if not k.startswith("tsb")})
        get_tsb(twin).reset_parameters()
        row["twin_accuracy_no_block"] = evaluate_accuracy(twin, loader, device=dev)
        t0 = time.perf_counter()
        cache = build_block_cache(twin, train, images=1024, device=dev)
        res = train_block(twin, cache.loader(64), epochs=4, lr=2e-2, device=dev, progress=False, cache=cache)
        row["block_seconds"] = time.perf_counter() - t0
        row["block_train_seconds"] = res.wall_time_s
        row["twin_accuracy_block"] = evaluate_accuracy(twin, loader, device=dev)
        out[preset] = row
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") else HERE / "device_check.json"
    p.add_argument("--out", type=Path, default=default_out)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--budget-s", type=float, default=420.0, help="sections after this many seconds are skipped")
    p.add_argument("--device", default="cuda", help="cpu: exercise the script without a GPU (development)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("device_check: no CUDA device available; nothing to check (run it on a GPU machine)")
        return 0
    warnings.filterwarnings("ignore")
    dev = torch.device(args.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    from tsb_aihw.utils.provenance import provenance

    t0 = time.perf_counter()
    deadline = t0 + args.budget_s
    results: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    _section(results, "forward", lambda: forward_check(dev, args.width, args.batch, args.repeats), deadline)
    _section(results, "training", lambda: training_check(dev, args.epochs), deadline)
    backbone = results["training"].pop("model", None)
    if backbone is not None:
        _section(results, "chip", lambda: chip_check(dev, backbone), deadline)
    results["wall_seconds"] = time.perf_counter() - t0
    try:
        results["provenance"] = provenance().to_dict()
    except Exception as exc:  # noqa: BLE001
        results["provenance"] = f"unavailable: {exc}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=str))
    print(f"device_check: wrote {args.out} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
