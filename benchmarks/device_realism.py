"""Device-realism measurements of issue 17 on LeNet-3 / mnist5k (small: a few chips, <= 500 test images).

    OMP_NUM_THREADS=1 python benchmarks/device_realism.py rram     # RRAM drift: single vs differential mapping
    OMP_NUM_THREADS=1 python benchmarks/device_realism.py adc [--compensation global]  # PCM acc. vs ADC bits
    OMP_NUM_THREADS=1 python benchmarks/device_realism.py verify   # redraw vs incremental write-verify
    OMP_NUM_THREADS=1 python benchmarks/device_realism.py energy   # inference energy/latency, TSB vs backbone

Each writes ``benchmarks/device_realism/<what>.json`` (adc: ``adc_<compensation>.json``) and prints a
markdown table. The backbone is trained
once (HWA noise 0.035 of the layer abs-max, 6 epochs, seed 0) and cached in ``benchmarks/device_realism/``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

OUT = Path(__file__).resolve().parent / "device_realism"
YEAR = 365.25 * 86400.0


def data(eval_images: int) -> tuple[Any, Any, Any]:
    from torch.utils.data import Subset

    from tsb_aihw.data import get_dataset, make_loader

    train = get_dataset("mnist5k", "train", seed=0)
    test = get_dataset("mnist5k", "test", seed=0)
    test = Subset(test, range(min(eval_images, len(test))))
    calib = Subset(train, range(256))
    return (make_loader(train, 128, shuffle=True, seed=0), make_loader(test, 250),
            make_loader(calib, 128))


def backbone(train_loader: Any) -> torch.nn.Module:
    from tsb_aihw.models import get_model
    from tsb_aihw.training import train_noise_injection

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "lenet3_mnist5k.pt"
    torch.manual_seed(0)
    model = get_model("lenet3", num_classes=10)
    if path.is_file():
        model.load_state_dict(torch.load(path))
        return model.eval()
    train_noise_injection(model, train_loader, noise_std=0.035, epochs=6, lr=2e-3, seed=0, progress=False)
    torch.save(model.state_dict(), path)
    return model.eval()


def accuracy(model: torch.nn.Module, loader: Any) -> float:
    from tsb_aihw.evaluation import evaluate_accuracy

    return evaluate_accuracy(model, loader)


def chips(model: torch.nn.Module, preset: Any, loader: Any, n: int, times: dict[str, float],
          calib: Any = None, percentile: float = 99.9, mode: str = "per_tile") -> dict[str, list[float]]:
    """Accuracy per chip and time; with ``calib`` the ADC is calibrated after programming each chip."""
    from tsb_aihw.analog import calibrate_adc, to_analog

    out: dict[str, list[float]] = {k: [] for k in times}
    analog = to_analog(model, preset, verify="none")
    for chip in range(n):
        torch.manual_seed(1000 + chip)
        analog.program_analog_weights()
        if calib is not None:
            calibrate_adc(analog, calib, percentile=percentile, mode=mode)
        for key, t in times.items():
            analog.drift_analog_weights(t)
            out[key].append(accuracy(analog, loader))
    return out


def _ms(v: list[float]) -> str:
    return f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


def run_rram(args: argparse.Namespace) -> dict[str, Any]:
    from tsb_aihw.devices import load_preset

    train, test, _ = data(args.eval_images)
    model = backbone(train)
    times = {"1s": 1.0, "1d": 86400.0, "1y": YEAR}
    res: dict[str, Any] = {"digital": accuracy(model, test), "chips": args.chips, "rows": {}}
    for mapping in ("single", "differential"):
        preset = load_preset("rram", noise__conductance_mapping=mapping)
        res["rows"][mapping] = chips(model, preset, test, args.chips, times)
    print(f"digital {res['digital']:.3f}\n| mapping | " + " | ".join(times) + " |\n|---|" + "---|" * len(times))
    for k, row in res["rows"].items():
        print(f"| {k} | " + " | ".join(_ms(row[t]) for t in times) + " |")
    return res


def run_adc(args: argparse.Namespace) -> dict[str, Any]:
    from tsb_aihw.analog import calibrate_adc, to_analog
    from tsb_aihw.devices import load_preset

    train, test, calib = data(args.eval_images)
    model = backbone(train)
    times = {"t=0": 0.0, "1d": 86400.0}
    res: dict[str, Any] = {"digital": accuracy(model, test), "chips": args.chips, "rows": [], "utilisation": {}}
    # ADC utilisation of the shipped 8-bit ADC (out_bound 10): |output| percentiles in ADC steps
    preset = load_preset("pcm")
    analog = to_analog(model, preset, verify="none")
    torch.manual_seed(1000)
    analog.program_analog_weights()
    cal = calibrate_adc(analog, calib, percentile=99.9)
    step = 2 * 10.0 / (2**8 - 2)
    res["utilisation"] = {t.layer + f"[{t.tile}]": {"p50_steps": t.p50 / step, "p99_steps": t.p99 / step,
                                                    "clipped_at_10": float(t.p99 > 10.0),
                                                    "calibrated_bound_p99.9": t.out_bound} for t in cal.tiles}
    print("8-bit ADC at out_bound 10, |pre-ADC output| in ADC steps (of 127):")
    for k, u in res["utilisation"].items():
        print(f"  {k}: median {u['p50_steps']:.1f}, p99 {u['p99_steps']:.1f}, p99.9 bound "
              f"{u['calibrated_bound_p99.9']:.2f}")
    res["drift_compensation"] = args.compensation
    for bits in args.bits:
        for label, pct in (("fixed out_bound 10", None), ("calibrated p99.9", 99.9), ("calibrated p99.99", 99.99),
                           ("calibrated max", 100.0)):
            preset = load_preset("pcm", periphery__adc_bits=bits, drift_compensation=args.compensation)
            row = chips(model, preset, test, args.chips, times, calib=calib if pct else None,
                        percentile=pct or 99.9)
            res["rows"].append({"adc_bits": bits, "adc": label, **row})
            print(f"| {bits} | {label} | " + " | ".join(_ms(row[t]) for t in times) + " |", flush=True)
    return res


def run_verify(args: argparse.Namespace) -> dict[str, Any]:
    from tsb_aihw.devices.characterize import verify_statistics
    from tsb_aihw.devices import load_preset

    res: dict[str, Any] = {}
    for name in ("pcm", "rram"):
        for algo in ("redraw", "incremental"):
            stats = verify_statistics(load_preset(name, write_verify__algorithm=algo), n_chips=args.chips).to_dict()
            res[f"{name}/{algo}"] = stats
            print(name, algo, json.dumps({k: v for k, v in stats.items() if k != "bins"}), flush=True)
    return res


def run_energy(args: argparse.Namespace) -> dict[str, Any]:
    from tsb_aihw.analog import inference_cost, to_analog
    from tsb_aihw.devices import load_preset, programming_cost
    from tsb_aihw.models import get_model, insert_tsb

    res: dict[str, Any] = {}
    for name in ("pcm", "rram"):
        preset = load_preset(name)
        for label, tsb in (("backbone", False), ("backbone+TSB", True)):
            torch.manual_seed(0)
            model = get_model("lenet3", num_classes=10)
            if tsb:
                model = insert_tsb(model, input_shape=(1, 32, 32))
            analog = to_analog(model, preset, verify="tsb" if tsb else "none")
            analog.program_analog_weights()
            cost = inference_cost(analog, preset, (1, 32, 32))
            prog = programming_cost(analog, preset)
            res[f"{name}/{label}"] = {"inference": cost.to_dict(), "programming": prog.to_dict()}
            print(f"| {name} | {label} | {cost.mvms} | {cost.energy_j * 1e9:.3g} nJ | {cost.latency_s * 1e6:.3g} us "
                  f"| {prog.energy_j * 1e6:.3g} uJ | {prog.time_s * 1e3:.3g} ms |", flush=True)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("rram", "adc", "verify", "energy"))
    parser.add_argument("--chips", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=500)
    parser.add_argument("--bits", type=int, nargs="*", default=[4, 5, 6, 8])
    parser.add_argument("--compensation", default="global_random", help="adc: drift_compensation of the pcm preset")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    res = {"rram": run_rram, "adc": run_adc, "verify": run_verify, "energy": run_energy}[args.what](args)
    res["command"] = "python benchmarks/device_realism.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res["seconds"] = round(time.time() - start, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"adc_{args.compensation}" if args.what == "adc" else args.what
    (OUT / f"{name}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
