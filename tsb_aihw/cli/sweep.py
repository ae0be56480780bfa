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
checkpoints/. Defaults for each kind may sit in the config's `sweep:` section. See docs/sweeps.md.

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


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.errors import ConfigError
    from tsb_aihw.sweeps import SweepAxis, run_sweep
    from tsb_aihw.sweeps.axes import canonical_kind
    from tsb_aihw.sweeps.options import load_sweep_config

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
    cfg, sections = load_sweep_config(args.config, {"seed": args.seed, "device": args.device})
    opts = sections.get(kind)
    flags = {"values": csv_list(args.presets) if args.presets is not None else csv_list(args.values),
             "key": args.key, "io": csv_list(args.io), "rules": csv_list(args.rules), "points": csv_list(args.points),
             "methods": csv_list(args.methods), "times": csv_list(args.times), "chips": args.chips}
    values = flags["values"] if flags["values"] is not None else (opts.values if opts else None)
    if values is None:
        raise ConfigError(f"sweep {args.kind}: no values; pass --values (or --presets), or put them under "
                          f"sweep: {args.kind}: values: in {args.config}")

    def pick(name: str) -> object:
        return flags[name] if flags[name] is not None else (getattr(opts, name) if opts else None)

    axis_opts = {k: pick(k) for k in ("key", "io", "rules", "points") if pick(k) is not None}
    add_tsb = not args.no_tsb_fraction and (opts.add_tsb_fraction if opts else True)
    axis = SweepAxis(kind, values, add_tsb_fraction=add_tsb, **axis_opts)  # type: ignore[arg-type]
    result = run_sweep(cfg, axis, out=args.out, methods=pick("methods"), chips=pick("chips"),  # type: ignore[arg-type]
                       times=pick("times"), workers=args.workers, scheduler=args.scheduler,  # type: ignore[arg-type]
                       threads=args.threads if args.threads is not None else 1, progress=not args.no_progress,
                       plot=not args.no_plots, move_aside=args.move_aside, models_from=models_from(args))
    n = len(result.points)
    pngs = [p for p in result.record.plots if p.endswith(".png")]
    print(f"sweep {args.kind}: {n} points x {result.record.chips} chips; see {args.out}/sweep.json, sweep.csv"
          + (f" and {', '.join(pngs)}" if pngs else ""))
    return 0
