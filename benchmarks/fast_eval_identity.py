"""Bit-identity of the fast evaluation across a code change: save its outputs, change the code, compare.

A speed change to ``tsb_aihw/analog/fast_eval.py`` must leave every float and the random stream as they
were (chip evaluations are compared across commits and results files). This runs the same chips, inputs
and seeds through the fast path and records every analog layer's output and the logits: VGG-8 w0.5 (pcm
batch 64, rram, nvcim-gaussian) and ResNet-18 w0.5 (pcm) in the statistical mode, both also in the exact
mode, the bf16 product (VGG-8 w0.25), and VGG-8 w0.25 on small tiles (several output tiles, input splits
inside channels) with other peripheries (6/5-bit, NM max, NM none, no DAC/ADC) in all three.

    nice -n 15 .venv/bin/python benchmarks/fast_eval_identity.py --save /tmp/before.pt   # old code
    nice -n 15 .venv/bin/python benchmarks/fast_eval_identity.py --check /tmp/before.pt  # new code: 0 differ
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

import torch

SMALL_TILES = {"mapping__max_input_size": 100, "mapping__max_output_size": 24}
PERIPHERIES: list[dict[str, Any]] = [{}, {"dac_bits": 6, "adc_bits": 5}, {"noise_management": "max"},
                                     {"noise_management": "none", "inp_bound": 2.0},
                                     {"dac_bits": None, "adc_bits": None}]


def chip(model: str, preset: str, width: float, **overrides: Any) -> torch.nn.Module:
    """``model`` at ``width`` programmed on ``preset`` (with ``overrides``) and drifted to 1 day, seeded."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model

    torch.manual_seed(0)
    digital = get_model(model, num_classes=10, in_channels=3, width=width, input_size=32).eval()
    analog = to_analog(digital, load_preset(preset, **overrides), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    return analog


@torch.no_grad()
def outputs(analog: torch.nn.Module, x: torch.Tensor, mode: str, product: str = "fp32") -> dict[str, torch.Tensor]:
    """Every analog layer's output and the logits of one forward at torch seed 1."""
    from tsb_aihw.analog.fast_eval import analog_layers, fast_forward

    out: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, n=n: out.__setitem__(n, o.clone()))
             for n, m in analog_layers(analog)]
    torch.manual_seed(1)
    try:
        with fast_forward(analog, mode, product) as skipped:
            if skipped:
                raise RuntimeError(f"layers left on AIHWKit's forward: {skipped}")
            out["logits"] = analog(x)
    finally:
        for h in hooks:
            h.remove()
    return out


def cases() -> dict[str, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    xs = {b: torch.randn(b, 3, 32, 32, generator=gen) for b in (8, 16, 64)}
    out = {}
    for preset, batch in (("pcm", 64), ("rram", 16), ("nvcim-gaussian", 16)):
        out[f"vgg8-{preset}-statistical"] = outputs(chip("vgg8", preset, 0.5), xs[batch], "statistical")
    out["vgg8-pcm-exact"] = outputs(chip("vgg8", "pcm", 0.5), xs[16], "exact")
    resnet = chip("resnet18", "pcm", 0.5)
    out["resnet18-pcm-statistical"] = outputs(resnet, xs[16], "statistical")
    out["resnet18-pcm-exact"] = outputs(resnet, xs[8], "exact")
    out["vgg8w0.25-pcm-bf16"] = outputs(chip("vgg8", "pcm", 0.25), xs[8], "statistical", "bf16")
    for i, periphery in enumerate(PERIPHERIES):
        analog = chip("vgg8", "pcm", 0.25, **SMALL_TILES, **{f"periphery__{k}": v for k, v in periphery.items()})
        for mode, product in (("statistical", "fp32"), ("exact", "fp32"), ("statistical", "bf16")):
            out[f"small-tiles-{i}-{mode}-{product}"] = outputs(analog, xs[8], mode, product)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", metavar="FILE")
    what.add_argument("--check", metavar="FILE")
    args = p.parse_args(argv)
    from tsb_aihw.utils.memory import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="aihwkit")
    now = cases()
    if args.save:
        torch.save(now, args.save)
        print(f"saved {sum(map(len, now.values()))} tensors of {len(now)} cases to {args.save}")
        return 0
    before = torch.load(args.check)
    if before.keys() != now.keys():
        raise SystemExit(f"different cases: {sorted(before.keys() ^ now.keys())}")
    differ = [(c, n) for c in before for n in before[c] if not torch.equal(before[c][n], now[c][n])]
    for c, n in differ:
        print(f"DIFFERENT {c} {n}: max |diff| {(before[c][n] - now[c][n]).abs().max().item():.3g}")
    print(f"{sum(map(len, before.values()))} tensors of {len(before)} cases compared: {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
