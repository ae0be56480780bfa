"""``tsb-aihw sweep KIND --config FILE --out DIR``: accuracy vs verified fraction / sigma / ADC bits / a preset key,
or vs time for several presets; resumable, on a process pool or a Dask cluster."""
from __future__ import annotations

import argparse

from tsb_aihw.cli.common import (
    add_executor_arguments,
    add_models_from_argument,
    add_out_arguments,
    csv_list,
    models_from,
)
from tsb_aihw.utils.io import JsonObject

NAME = "sweep"
HELP = ("sweep one axis (verified-fraction, sigma, adc-bits, param, presets, block) over Monte-Carlo chips; every cell "
        "is saved as it finishes and a re-run resumes")

EPILOG = """\
kinds:
  verified-fraction  selective write-verify curves (random / magnitude / second_derivative) from 0 (one-shot)
                     to 1 (full write-verify), TSB and other --points at their own verified fraction
  sigma              device sigma (preset key noise.sigma; nvcim-gaussian)
  adc-bits           ADC and DAC bits (periphery.adc_bits / dac_bits; needs periphery.is_perfect false)
  param              any preset key: --key noise.prog_noise_scale --values 0.5,1,2
  presets            one deployment per preset, accuracy vs time: --presets pcm,rram --times 1s,1d,1y
  block              the per-chip block: --key block.calibration_images --values 250,1000 (or
                     block.epochs, block.lr, block.n_reads, block.read_time, or its size block.k);
                     chip-block methods (tsb, tsb_full, tsb_bn) at every value and at the config's own
                     (the paired reference), the others once; reports the block's time in backbone
                     epochs and the cheapest value whose paired per-chip accuracy difference is not
                     measurably below the config's

Backbones and fixed blocks are trained once on the config's preset and reused at every axis value.
Outputs in --out: sweep.json, sweep.csv, sweep_chips.csv, PNG+PDF plots, store.json (finished cells),
checkpoints/. Defaults for each kind may sit in the config's `sweep:` section (sweep: KIND: {values, key, ..., methods,
times, chips}); a flag overrides its key there. See docs/sweeps.md.

examples:
  tsb-aihw sweep verified-fraction --config configs/sweeps/mnist5k-lenet3.yaml --out runs/fraction
  tsb-aihw sweep sigma --config configs/sweeps/mnist5k-lenet3.yaml --values 0.1,0.2,0.35 --out runs/sigma --workers 2
  tsb-aihw sweep adc-bits --config configs/sweeps/mnist5k-lenet3-periphery.yaml --values 2,4,6,8 --out runs/adc
  tsb-aihw sweep block --config configs/sweeps/mnist5k-lenet3-block.yaml --key block.calibration_images \\
      --values 256,512,1024,2048 --out runs/block-images
  tsb-aihw sweep presets --config configs/sweeps/mnist5k-lenet3-drift.yaml --presets pcm,rram,nvcim-gaussian \\
      --times 1s,1h,1d,1mo,1y --out runs/drift --scheduler tcp://10.0.0.5:8786
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("kind", choices=["verified-fraction", "sigma", "adc-bits", "param", "presets", "block"],
                   help="what to sweep (see below)")
    p.add_argument("--config", required=True, help="base study YAML (schema of `tsb-aihw run --config`, plus an "
                   "optional sweep: section); see configs/sweeps/")
    add_out_arguments(p)
    add_models_from_argument(p)
    p.add_argument("--values", default=None, help="comma-separated axis values: fractions in [0, 1], sigmas, bits, "
                   "values of --key, or preset names")
    p.add_argument("--presets", default=None, help="presets kind: comma-separated preset names or YAML paths "
                   "(same as --values)")
    p.add_argument("--key", default=None, help="param kind: the preset key to set, dotted (noise.prog_noise_scale); "
                   "block kind: the per-chip block field (block.calibration_images, block.epochs, ..., block.k)")
    p.add_argument("--io", default=None, help="adc-bits kind: which converters get the bits: adc, dac or adc,dac "
                   "(default both)")
    p.add_argument("--rules", default=None, help="verified-fraction kind: selection rules of the curves "
                   "(default: the config's selective.methods)")
    p.add_argument("--points", default=None, help="verified-fraction kind: methods drawn as points at their own "
                   "fraction, e.g. tsb,bn_recalibration (default: those in the config's methods, at least tsb)")
    p.add_argument("--no-tsb-fraction", action="store_true", help="verified-fraction kind: do not add TSB's own "
                   "verified fraction to the curves' fractions")
    p.add_argument("--methods", default=None, help="methods deployed at every value (sigma/adc-bits/param/presets; "
                   "block: the chip-block ones at every value, the others once; default: the config's methods)")
    p.add_argument("--times", default=None, help="drift times, e.g. 0,1s,1h,1d,1mo,1y (default: the config's)")
    p.add_argument("--chips", type=int, default=None, help="override the config's chip count")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    add_executor_arguments(p, "(axis value, method, chip) cells")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/PDF plots")


def overrides_from(args: argparse.Namespace, kind: str) -> JsonObject:
    """The flags the user gave, as dotted overrides on the sweep config (None: not given); per-kind flags land in
    the kind's ``sweep:`` entry, so they beat it as it beats the study's own keys."""
    entry = f"sweep.{kind}."
    values = args.presets if args.presets is not None else args.values
    return {"seed": args.seed, "device": args.device, entry + "values": csv_list(values), entry + "key": args.key,
            entry + "io": csv_list(args.io), entry + "rules": csv_list(args.rules),
            entry + "points": csv_list(args.points),
            entry + "add_tsb_fraction": False if args.no_tsb_fraction else None,
            entry + "methods": csv_list(args.methods), entry + "times": csv_list(args.times),
            entry + "chips": args.chips}


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.errors import ConfigError
    from tsb_aihw.sweeps import run_sweep
    from tsb_aihw.sweeps.axes import canonical_kind
    from tsb_aihw.sweeps.options import sweep_from_config

    kind = canonical_kind(args.kind)
    if args.presets is not None and args.values is not None:
        raise ConfigError("give the presets with --presets or --values, not both")
    if args.presets is not None and kind != "presets":
        raise ConfigError(f"--presets applies to the presets kind only; for {args.kind} pass --values")
    for flag, kinds in (("key", ("param", "block")), ("io", ("adc_bits",)), ("rules", ("verified_fraction",)),
                        ("points", ("verified_fraction",)), ("no_tsb_fraction", ("verified_fraction",))):
        if getattr(args, flag) not in (None, False) and kind not in kinds:
            raise ConfigError(f"--{flag.replace('_', '-')} applies to the {' / '.join(kinds)} "
                              f"kind{'s' if len(kinds) > 1 else ''} only, not "
                              f"{args.kind}; drop it")
    cfg, axis = sweep_from_config(args.config, kind, overrides_from(args, kind))
    result = run_sweep(cfg, axis, out=args.out, workers=args.workers, scheduler=args.scheduler,
                       threads=args.threads if args.threads is not None else 1, progress=not args.no_progress,
                       plot=not args.no_plots, move_aside=args.move_aside, models_from=models_from(args))
    n = len(result.points)
    pngs = [p for p in result.record.plots if p.endswith(".png")]
    print(f"sweep {args.kind}: {n} points x {result.record.chips} chips; see {args.out}/sweep.json, sweep.csv"
          + (f" and {', '.join(pngs)}" if pngs else ""))
    return 0
