"""``tsb-aihw sweep KIND --config FILE --out DIR``: accuracy vs verified fraction / sigma / ADC bits / a preset key,
or vs time for several presets; resumable, on a process pool or a Dask cluster."""
from __future__ import annotations

import argparse

NAME = "sweep"
HELP = ("sweep one axis (verified-fraction, sigma, adc-bits, param, presets) over Monte-Carlo chips; every cell "
        "is saved as it finishes and a re-run resumes")

EPILOG = """\
kinds:
  verified-fraction  selective write-verify curves (random / magnitude / second_derivative) from 0 (one-shot)
                     to 1 (full write-verify), TSB and other --points at their own verified fraction
  sigma              device sigma (preset key noise.sigma; nvcim-gaussian)
  adc-bits           ADC and DAC bits (periphery.adc_bits / dac_bits; needs periphery.is_perfect false)
  param              any preset key: --key noise.prog_noise_scale --values 0.5,1,2
  presets            one deployment per preset, accuracy vs time: --presets pcm,rram --times 1s,1d,1y

Backbones and fixed blocks are trained once on the config's preset and reused at every axis value.
Outputs in --out: sweep.json, sweep.csv, sweep_chips.csv, PNG+PDF plots, sweep_cells.json (finished cells),
checkpoints/. Defaults for each kind may sit in the config's `sweep:` section. See docs/sweeps.md.

examples:
  tsb-aihw sweep verified-fraction --config configs/sweeps/mnist5k-lenet3.yaml --out runs/fraction
  tsb-aihw sweep sigma --config configs/sweeps/mnist5k-lenet3.yaml --values 0.1,0.2,0.35 --out runs/sigma --workers 2
  tsb-aihw sweep adc-bits --config configs/sweeps/mnist5k-lenet3-periphery.yaml --values 2,4,6,8 --out runs/adc
  tsb-aihw sweep presets --config configs/sweeps/mnist5k-lenet3-drift.yaml --presets pcm,rram,nvcim-gaussian \\
      --times 1s,1h,1d,1mo,1y --out runs/drift --scheduler tcp://10.0.0.5:8786
"""


def _list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("kind", choices=["verified-fraction", "sigma", "adc-bits", "param", "presets"],
                   help="what to sweep (see below)")
    p.add_argument("--config", required=True, help="base study YAML (schema of `tsb-aihw run --config`, plus an "
                   "optional sweep: section); see configs/sweeps/")
    p.add_argument("--out", required=True, help="output directory (must be readable by every worker)")
    p.add_argument("--values", default=None, help="comma-separated axis values: fractions in [0, 1], sigmas, bits, "
                   "values of --key, or preset names")
    p.add_argument("--presets", default=None, help="presets kind: comma-separated preset names or YAML paths "
                   "(same as --values)")
    p.add_argument("--key", default=None, help="param kind: the preset key to set, dotted (noise.prog_noise_scale)")
    p.add_argument("--io", default=None, help="adc-bits kind: which converters get the bits: adc, dac or adc,dac "
                   "(default both)")
    p.add_argument("--rules", default=None, help="verified-fraction kind: selection rules of the curves "
                   "(default: the config's selective.methods)")
    p.add_argument("--points", default=None, help="verified-fraction kind: methods drawn as points at their own "
                   "fraction, e.g. tsb,bn_recalibration (default: those in the config's methods, at least tsb)")
    p.add_argument("--no-tsb-fraction", action="store_true", help="verified-fraction kind: do not add TSB's own "
                   "verified fraction to the curves' fractions")
    p.add_argument("--methods", default=None, help="methods deployed at every value (sigma/adc-bits/param/presets; "
                   "default: the config's methods)")
    p.add_argument("--times", default=None, help="drift times, e.g. 0,1s,1h,1d,1mo,1y (default: the config's)")
    p.add_argument("--chips", type=int, default=None, help="override the config's chip count")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local worker processes (default 1: in this "
                       "process)")
    where.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://host:port: run cells on "
                       "that cluster (needs pip install 'tsb-aihw[dask]')")
    p.add_argument("--threads", type=int, default=1, help="torch threads per cell (default 1 on every executor, "
                   "so results do not depend on the executor)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG/PDF plots")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.errors import ConfigError
    from tsb_aihw.sweeps import SweepAxis, run_sweep
    from tsb_aihw.sweeps.axes import canonical_kind
    from tsb_aihw.sweeps.config import load_sweep_config

    kind = canonical_kind(args.kind)
    cfg, sections = load_sweep_config(args.config)
    opts = dict(sections.get(kind, {}))
    for attr in ("seed", "device"):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))
    values = _list(args.presets) if args.presets is not None else _list(args.values)
    if args.presets is not None and args.values is not None:
        raise ConfigError("give the presets with --presets or --values, not both")
    if values is not None:
        opts["values"] = values
    for flag, key in (("key", "key"),):
        if getattr(args, flag) is not None:
            opts[key] = getattr(args, flag)
    for flag in ("io", "rules", "points", "methods", "times"):
        if getattr(args, flag) is not None:
            opts[flag] = _list(getattr(args, flag))
    if args.no_tsb_fraction:
        opts["add_tsb_fraction"] = False
    if args.chips is not None:
        opts["chips"] = args.chips
    if "values" not in opts:
        raise ConfigError(f"sweep {args.kind}: no values; pass --values (or --presets), or put them under "
                          f"sweep: {args.kind}: values: in {args.config}")
    axis_opts = {k: opts[k] for k in ("key", "io", "rules", "points", "add_tsb_fraction") if k in opts}
    axis = SweepAxis(kind, opts["values"], **axis_opts)
    result = run_sweep(cfg, axis, out=args.out, methods=opts.get("methods"), chips=opts.get("chips"),
                       times=opts.get("times"), workers=args.workers, scheduler=args.scheduler,
                       threads=args.threads, progress=not args.no_progress, plot=not args.no_plots)
    n = len(result.points)
    print(f"sweep {args.kind}: {n} points x {result.data['chips']} chips; see {args.out}/sweep.json, sweep.csv"
          + (f" and {', '.join(p for p in result.data.get('plots', []) if p.endswith('.png'))}"
             if result.data.get("plots") else ""))
    return 0
