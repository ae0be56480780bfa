"""Where an analog evaluation spends its time: torch-profiler op tables and per-layer times.

Profiles one forward of vgg8 (optionally with the TSB inserted) at batch 256 for the digital model, AIHWKit's
torch tiles and the fast path (``tsb_aihw.analog.fast_eval``); the summary is in docs/performance.md.

    .venv/bin/python benchmarks/profile_eval.py --width 0.5 --tsb
"""
from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile

LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1", "fc2", "tsb")


def layer_times(model: torch.nn.Module, x: torch.Tensor, rounds: int = 2) -> dict[str, float]:
    """Median over rounds of the summed forward time (ms) of each named top-level layer."""
    acc: dict[str, list[float]] = {}
    handles = []
    current: dict[str, float] = {}
    for name, mod in model.named_modules():
        if name in LAYERS:
            handles.append(mod.register_forward_pre_hook(
                lambda m, i, n=name: current.__setitem__(n, current.get(n, 0.0) - time.perf_counter())))
            handles.append(mod.register_forward_hook(
                lambda m, i, o, n=name: current.__setitem__(n, current[n] + time.perf_counter())))
    try:
        for _ in range(rounds):
            current.clear()
            model(x)
            for n, v in current.items():
                acc.setdefault(n, []).append(1e3 * v)
    finally:
        for h in handles:
            h.remove()
    return {n: sorted(v)[len(v) // 2] for n, v in acc.items()}


def main() -> None:
    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.fast_eval import fast_forward
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model, insert_tsb

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--tsb", action="store_true", help="insert the shared block (k=16) first")
    p.add_argument("--rows", type=int, default=12)
    p.add_argument("--skip-aihwkit", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="aihwkit")
    torch.manual_seed(0)
    digital = get_model("vgg8", num_classes=10, in_channels=3, width=args.width, input_size=32).eval()
    if args.tsb:
        digital = insert_tsb(digital, k=16).eval()
    analog = to_analog(digital, load_preset("pcm"), verify="tsb" if args.tsb else "none")
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    x = torch.randn(args.batch, 3, 32, 32)
    runs = {"digital": (digital, False)}
    if not args.skip_aihwkit:
        runs["aihwkit"] = (analog, False)
    runs["fast"] = (analog, True)
    per_layer = {}
    with torch.no_grad():
        for name, (model, fast) in runs.items():
            with fast_forward(model) if fast else torch.no_grad():
                model(x)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    model(x)
                per_layer[name] = layer_times(model, x)
            print(f"\n== {name}")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    print("\nper layer (ms): " + " | ".join(runs))
    for layer in LAYERS:
        if layer in per_layer["digital"]:
            print(layer, " | ".join(f"{per_layer[r].get(layer, float('nan')):.1f}" for r in runs))


if __name__ == "__main__":
    main()
