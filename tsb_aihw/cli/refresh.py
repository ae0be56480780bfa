"""``tsb-aihw refresh``: does re-training and re-writing the TSB block late in a chip's life pay off?"""
from __future__ import annotations

import argparse
import time

from tsb_aihw.cli.common import add_executor_arguments, add_out_arguments, csv_list, executor_from

NAME = "refresh"
HELP = ("TSB refresh study: re-train the block on the drifted backbone at chosen times, re-write it, and "
        "compare accuracy vs time with and without refresh (plus the refresh cost in pulses)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out_arguments(p)
    p.add_argument("--config", default=None, help="YAML refresh config (a study config plus refresh_times, "
                   "controls, reference); the options below override it")
    p.add_argument("--preset", default=None, help="drifting device preset (default pcm)")
    p.add_argument("--model", default=None, help="backbone (default lenet3)")
    p.add_argument("--dataset", default=None, help="dataset (default mnist5k)")
    p.add_argument("--chips", type=int, default=None, help="Monte-Carlo chips (default 8)")
    p.add_argument("--times", default=None, help="evaluation times, comma-separated (default 1s,1h,1d,1w,1mo,1y)")
    p.add_argument("--refresh", default=None, help="refresh times, comma-separated (default 1d,1mo)")
    p.add_argument("--eval-limit", type=int, default=None, help="test images per evaluation (default 400)")
    p.add_argument("--early-epochs", type=int, default=None, help="TSB backbone epochs (default 6)")
    p.add_argument("--full-epochs", type=int, default=None, help="baseline (b) epochs (default 30)")
    p.add_argument("--block-epochs", type=int, default=None, help="block epochs per training (default 8)")
    p.add_argument("--n-reads", type=int, default=None, help="read-backs averaged per backbone read (default 1)")
    p.add_argument("--no-controls", action="store_true", help="skip the re-write-without-re-training control")
    p.add_argument("--no-reference", action="store_true", help="skip the one-shot baseline (b) arm")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 chips, 1-epoch trainings, 200 images")
    add_executor_arguments(p, "chips")


def build_config(args: argparse.Namespace):  # -> RefreshConfig
    """``--config`` (or the refresh defaults), then ``--quick``, then the command-line flags."""
    from tsb_aihw.pipeline.config import RefreshConfig, config_from, read_config_file

    raw = read_config_file(args.config, "refresh config") if args.config else {}
    quick = ({"chips": 2, "data.eval_limit": 200, "backbone.full_epochs": 1, "backbone.early_epochs": 1,
              "block.epochs": 1} if args.quick else {})
    flags = {"preset": args.preset, "chips": args.chips, "seed": args.seed, "device": args.device,
             "model.name": args.model, "data.name": args.dataset, "data.eval_limit": args.eval_limit,
             "backbone.early_epochs": args.early_epochs, "backbone.full_epochs": args.full_epochs,
             "block.epochs": args.block_epochs, "block.n_reads": args.n_reads, "times": csv_list(args.times),
             "refresh_times": csv_list(args.refresh), "controls": False if args.no_controls else None,
             "reference": False if args.no_reference else None}
    return config_from(RefreshConfig, raw, args.config or "", quick | {k: v for k, v in flags.items()
                                                                                       if v is not None})


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.refresh import run_refresh_study

    cfg = build_config(args)
    t0 = time.perf_counter()
    with executor_from(args) as executor:
        res = run_refresh_study(cfg, args.out, progress=not args.no_progress, executor=executor,
                                move_aside=args.move_aside)
    print(f"done in {time.perf_counter() - t0:.0f} s; see {args.out}/results.json and "
          f"{args.out}/refresh_accuracy_vs_time.png")
    labels = res.time_labels
    for arm, a in res.arms.items():
        accs = ", ".join(f"{t} {100 * a.accuracy[t].mean:.2f}" for t in labels)
        print(f"  {arm:12s} {accs}")
    refreshed = res.arms.get("tsb_refresh")
    if refreshed is not None and refreshed.minus_tsb is not None:
        d = refreshed.minus_tsb[labels[-1]]
        print(f"  refresh - no refresh at {labels[-1]}: {100 * d.mean:+.2f} pp "
              f"[{100 * d.ci95_low:+.2f}, {100 * d.ci95_high:+.2f}] (paired, 95% CI)")
    c = res.cost
    print(f"  refresh cost: {c.refresh_total_pulses:,.0f} pulses in {len(c.per_refresh)} refreshes "
          f"({100 * c.refresh_pulses_vs_chip:.2f}% of programming the chip once, {c.chip_pulses:,.0f} pulses)")
    return 0
