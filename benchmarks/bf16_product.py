"""The statistical mode's bf16 product against its fp32 product: speed, layer error and chip accuracy (issue 36).

Three sections, one JSON (``--json``, default ``benchmarks/bf16_product.json``) with the CPU's model name and
bf16 flags (bf16 only pays where ``amx_bf16`` / ``avx512_bf16`` are present; elsewhere it is emulated and much
slower), versions and the config:

- ``speed``: one forward of VGG-8 (``--speed-model``, width ``--speed-width``) programmed on pcm, batch
  ``--speed-batch`` of random 32x32 images: digital, statistical fp32 product, statistical bf16 product,
  interleaved over ``--rounds`` rounds (median seconds and per-round ratios);
- ``rounding``: what the bf16 product does to one pcm layer at a fixed chip (the tests' 3x3 conv 64 -> 64 on
  512x512 tiles, 1 d): the spread of bf16 - fp32 at the same noise draws in output-noise sd, for the shipped
  product (fp32 result) and for a single bf16 pass whose output is rounded to bf16, and the chip's own output
  error (programmed - digital) for scale;
- ``accuracy``: chip accuracy paired per chip, bf16 - fp32 product (same programmed, drifted chip, same eval
  seed ``chip.rng("eval", t)``: ``evaluation.chip_accuracy``), on the committed backbones (``--models``; the
  set-up of ``statistical_bias.py``: seeded random images of the held-out test split) for ``--presets`` (the
  study's own preset with its overrides, e.g. nvcim-gaussian at sigma 0.1); mean and Student-t 95 % CI over
  chips. pcm is evaluated at ``--time``, presets without drift at 0.

    nice -n 10 .venv/bin/python benchmarks/bf16_product.py --chips 20 --images 2000   # an AMX / GPU machine
    nice -n 15 .venv/bin/python benchmarks/bf16_product.py --quick                     # smoke size (any CPU)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from statistical_bias import committed_model_and_images, source_id  # noqa: E402  (benchmarks/, this folder)

RECORDED_FLAGS = ("amx_bf16", "avx512_bf16", "amx_tile", "avx512f", "avx2")
PRODUCTS = ("fp32", "bf16")


def cpu_record() -> dict[str, Any]:
    import torch

    from tsb_aihw.analog.fast_eval import native_bf16_device
    from tsb_aihw.utils.precision import cpu_flags, cpu_model_name

    flags = cpu_flags()
    return {"model_name": cpu_model_name(), "flags": {f: f in flags for f in RECORDED_FLAGS},
            "native_bf16": native_bf16_device(torch.device("cpu")), "logical_cpus": os.cpu_count()}


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Digital vs statistical fp32 vs statistical bf16 forward of one programmed pcm chip, interleaved rounds."""
    import torch

    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.fast_eval import fast_forward
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models.registry import get_model

    torch.manual_seed(0)
    digital = get_model(args.speed_model, num_classes=10, width=args.speed_width).eval()
    analog = to_analog(digital, load_preset("pcm"), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    x = torch.randn(args.speed_batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    seconds: dict[str, list[float]] = {"digital": [], "fp32": [], "bf16": []}
    with torch.no_grad():
        for r in range(args.rounds + 1):  # round 0 warms up (allocations, oneDNN kernels) and is not kept
            for arm in seconds:
                start = time.perf_counter()
                if arm == "digital":
                    digital(x)
                else:
                    with fast_forward(analog, "statistical", arm):
                        analog(x)
                if r:
                    seconds[arm].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    return {"model": args.speed_model, "width": args.speed_width, "batch": args.speed_batch, "preset": "pcm",
            "rounds": args.rounds, "seconds": seconds, "median_s": med,
            "bf16_over_fp32": med["bf16"] / med["fp32"], "fp32_over_digital": med["fp32"] / med["digital"],
            "bf16_over_digital": med["bf16"] / med["digital"]}


def rounding() -> dict[str, Any]:
    """bf16 - fp32 on one pcm layer at the same noise draws, with and without the second (fp32-result) pass."""
    import torch
    from torch import nn

    from tsb_aihw.analog import fast_eval, to_analog
    from tsb_aihw.analog.fast_eval import FastLayer
    from tsb_aihw.devices import load_preset

    torch.manual_seed(0)
    layer = nn.Conv2d(64, 64, 3, padding=1, bias=True).eval()
    analog = to_analog(nn.Sequential(layer), load_preset("pcm"), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    tile_layer = dict(analog.named_modules())["0"]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 64, 8, 8, generator=g).mul_(torch.rand(12, 64, 8, 8, generator=g).mul_(2.0)).relu_()

    def run(product: str, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return FastLayer(tile_layer, "statistical", product)(x)

    def one_pass(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.matmul(a, b)  # fp32 accumulation, output rounded to bf16
        return y.float() if out is None else out.add_(y)

    with torch.no_grad():
        ref = run("fp32", 5)
        noise_sd = float((run("fp32", 6) - ref).std()) / 2**0.5
        shipped = run("bf16", 5) - ref
        saved = fast_eval._bf16_matmul
        fast_eval._bf16_matmul = one_pass
        try:
            single = run("bf16", 5) - ref
        finally:
            fast_eval._bf16_matmul = saved
        chip_error = float((ref - layer(x)).std())
    return {"layer": "pcm 3x3 conv 64->64, 12x8x8 inputs, 1 d", "output_noise_sd": noise_sd,
            "chip_error_sd": chip_error,
            "fp32_result": {"mean_noise_sd": float(shipped.mean()) / noise_sd,
                            "std_noise_sd": float(shipped.std()) / noise_sd,
                            "std_over_chip_error": float(shipped.std()) / chip_error},
            "bf16_rounded_result": {"mean_noise_sd": float(single.mean()) / noise_sd,
                                    "std_noise_sd": float(single.std()) / noise_sd,
                                    "std_over_chip_error": float(single.std()) / chip_error}}


def accuracy(args: argparse.Namespace, data: dict[str, Any], save: Any) -> None:
    """Paired chip accuracies, bf16 - fp32 product, per committed backbone and preset (resumable per chip)."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.chip import Chip
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation.accuracy import chip_accuracy
    from tsb_aihw.evaluation.stats import summarize
    from tsb_aihw.evaluation.times import parse_times
    from tsb_aihw.utils.io import read_json

    (t_drift,) = parse_times([args.time])
    section = data.setdefault("accuracy", {})
    for models_dir in args.models:
        digital, loader, config = committed_model_and_images(Path(models_dir), args.model_file, args.images,
                                                             args.image_seed, args.batch)
        study = read_json(Path(models_dir) / "results.json", dict)["config"]
        for name in args.presets:
            overrides = study.get("preset_overrides", {}) if name == study["preset"] else {}  # e.g. sigma 0.1
            preset = load_preset(name, overrides=overrides)
            t = t_drift if preset.drifts else 0.0
            label = f"{Path(models_dir).name}/{name}"
            rec = section.setdefault(label, {"config": config | {"time_s": t, "study_seed": args.seed,
                                                                 "preset_overrides": overrides}, "chips": {}})
            analog = to_analog(digital, preset, verify="none").eval()
            for i in range(args.chips):
                row = rec["chips"].setdefault(str(i), {})
                if all(p in row for p in PRODUCTS):
                    continue
                chip = Chip(analog, preset, args.seed, i)
                chip.program()
                for product in PRODUCTS:
                    start = time.perf_counter()
                    row[product] = chip_accuracy(chip, loader, t, fast="statistical", product=product)
                    row[f"{product}_s"] = time.perf_counter() - start
                    print(f"{label} chip {i} {product}: {row[product]:.4f} ({row[product + '_s']:.1f} s)", flush=True)
                diffs = [100.0 * (r["bf16"] - r["fp32"]) for r in rec["chips"].values() if "bf16" in r and "fp32" in r]
                rec["bf16_minus_fp32_pp"] = summarize(diffs).to_dict() | {
                    "chips_better": sum(d > 0 for d in diffs), "chips_worse": sum(d < 0 for d in diffs)}
                rec["fp32_accuracy"] = summarize([r["fp32"] for r in rec["chips"].values() if "fp32" in r]).to_dict()
                save()
            s = rec["bf16_minus_fp32_pp"]
            print(f"{label}: bf16 - fp32 {s['mean']:+.3f} pp [{s['ci95_low']:+.3f}, {s['ci95_high']:+.3f}] over "
                  f"{s['n']} chips", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", nargs="+", default=["speed", "rounding", "accuracy"],
                   choices=["speed", "rounding", "accuracy"])
    p.add_argument("--models", nargs="+", default=[str(ROOT / "results" / "cifar10-vgg8"),
                                                    str(ROOT / "results" / "cifar10-resnet18")])
    p.add_argument("--model-file", default="full_noise_injection.pt")
    p.add_argument("--presets", nargs="+", default=["pcm", "nvcim-gaussian"])
    p.add_argument("--chips", type=int, default=20)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--image-seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--time", default="1d", help="drift time of presets that drift")
    p.add_argument("--seed", type=int, default=0, help="study seed: chip i is Chip(model, preset, seed, i)")
    p.add_argument("--speed-model", default="vgg8")
    p.add_argument("--speed-width", type=float, default=0.25)
    p.add_argument("--speed-batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="smoke size for CPUs without native bf16 (emulated, ~70x slower): VGG-8 only, 2 chips, "
                        "100 images, speed batch 8, 1 round")
    p.add_argument("--json", default=str(HERE / "bf16_product.json"))
    args = p.parse_args()
    if args.quick:
        args.models, args.chips, args.images, args.batch = [str(ROOT / "results" / "cifar10-vgg8")], 2, 100, 100
        args.speed_batch, args.rounds = 8, 1
    warnings.filterwarnings("ignore")

    import torch

    from tsb_aihw.utils.io import atomic_write_json, read_json
    from tsb_aihw.utils.memory import keep_freed_memory
    from tsb_aihw.utils.provenance import provenance

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    out = Path(args.json)
    data: dict[str, Any] = read_json(out, dict) if out.exists() else {}
    if data.get("args", {}).get("quick") != args.quick:  # a quick and a full run never share one file
        data = {}
    data |= {"description": __doc__.split("\n\n")[0], "command": "nice -n 10 .venv/bin/python benchmarks/"
             "bf16_product.py " + " ".join(sys.argv[1:]), "args": vars(args), "cpu": cpu_record(),
             "provenance": provenance().to_dict(), "fast_eval_source": source_id(ROOT / "tsb_aihw" / "analog" / "fast_eval.py")}

    def save() -> None:
        atomic_write_json(out, data)

    if "rounding" in args.sections:
        data["rounding"] = rounding()
        print("rounding:", data["rounding"], flush=True)
        save()
    if "speed" in args.sections:
        data["speed"] = speed(args)
        sp = data["speed"]
        print(f"speed: digital {sp['median_s']['digital']:.3f} s, fp32 {sp['median_s']['fp32']:.3f} s, bf16 "
              f"{sp['median_s']['bf16']:.3f} s (bf16/fp32 {sp['bf16_over_fp32']:.2f}) on {data['cpu']['model_name']}",
              flush=True)
        save()
    if "accuracy" in args.sections:
        accuracy(args, data, save)
    save()


if __name__ == "__main__":
    main()
