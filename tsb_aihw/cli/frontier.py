"""``tsb-aihw frontier``: TSB's training speed-up vs its accuracy-gap improvement over the early backbone's budget."""
from __future__ import annotations

import argparse

from tsb_aihw.cli.common import (
    add_executor_arguments,
    add_models_from_argument,
    add_out_arguments,
    csv_list,
    executor_from,
    float_list,
    models_from,
)

NAME = "frontier"
HELP = ("the speed-up vs gap-improvement frontier: one study per early-backbone budget on the same chips, TSB "
        "variants as curves, baselines as points, the paper's >5x/>20x region shaded; resumable")
QUICK = {"chips": 2, "budgets": [0.34, 1.0], "variants": ["tsb", "tsb_full"], "data.eval_limit": 200,
         "backbone.full_epochs": 3, "block.epochs": 1, "selective.methods": ["magnitude"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out_arguments(p)
    add_models_from_argument(p)
    p.add_argument("--config", default=None, help="YAML frontier config (a study config plus budgets and variants; "
                   "see configs/frontier/); the options below override it")
    p.add_argument("--budgets", default=None, help="early-backbone budgets, fractions of backbone.full_epochs, "
                   "comma-separated (default 0.05,0.1,0.2,0.5,1)")
    p.add_argument("--variants", default=None, help="TSB variants: tsb, tsb_full, tsb_bn, tsb_full_bn (tsb_bn and "
                   "tsb_full_bn only with block.recalibrate_bn: false; default tsb,tsb_full)")
    p.add_argument("--extra-baselines", default=None, help="optional baselines beside the fixed ones: vanilla ((b) "
                   "trained at sigma 0, one more backbone), comma-separated; '' for none. They only add cells, so "
                   "a frontier run without them resumes with them later")
    p.add_argument("--chips", type=int, default=None, help="Monte-Carlo chips (default 20)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 chips, budgets 1/3 and 1 of 3 epochs, 200 "
                   "test images")
    add_executor_arguments(p, "(budget, method, chip) cells")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.config import config_from, read_config_file
    from tsb_aihw.pipeline.frontier import FrontierConfig, run_frontier

    raw = read_config_file(args.config, "frontier config") if args.config else {}
    flags = {"budgets": float_list(args.budgets, "--budgets"),  # an empty list is refused by the config, not ignored
             "variants": csv_list(args.variants), "extra_baselines": csv_list(args.extra_baselines),
             "chips": args.chips, "seed": args.seed, "device": args.device}
    overrides = (QUICK if args.quick else {}) | {k: v for k, v in flags.items() if v is not None}
    cfg = config_from(FrontierConfig, raw, args.config or "", overrides)
    sources = models_from(args)
    with executor_from(args) as executor:
        res = run_frontier(cfg, args.out, progress=not args.no_progress, executor=executor, threads=executor.threads,
                           move_aside=args.move_aside, models_from=sources)
    for key, pts in res.curves.items():
        cells = ", ".join(f"{p.budget:g}: {p.speedup:.1f}x / "
                          + ("n/a" if p.gap_improvement is None else f"{p.gap_improvement:.1f}x") for p in pts)
        print(f"  {key:10s} (budget: speed-up / gap improvement) {cells}")
    v = res.verdict
    best = v.best_gap_improvement_at_5x
    print(f"  >5x and >20x together: {v.both_claims_hold_at or 'nowhere'}; best gap improvement at >=5x: "
          f"{best.to_dict() if best else None}")
    print(f"see {args.out}/frontier.json and {args.out}/frontier.png")
    return 0
