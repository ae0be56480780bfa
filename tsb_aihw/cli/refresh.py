"""``tsb-aihw refresh``: does re-training and re-writing the TSB block late in a chip's life pay off?"""
from __future__ import annotations

import argparse
import time

NAME = "refresh"
HELP = ("TSB refresh study: re-train the block on the drifted backbone at chosen times, re-write it, and "
        "compare accuracy vs time with and without refresh (plus the refresh cost in pulses)")

DEFAULT_TIMES = "1s,1h,1d,1w,1mo,1y"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (results.json, CSVs, plot, checkpoints)")
    p.add_argument("--config", default=None, help="YAML study config to start from (see configs/); the options "
                   "below override it")
    p.add_argument("--preset", default=None, help="drifting device preset (default pcm)")
    p.add_argument("--model", default=None, help="backbone (default lenet3)")
    p.add_argument("--dataset", default=None, help="dataset (default mnist5k)")
    p.add_argument("--chips", type=int, default=None, help="Monte-Carlo chips (default 8)")
    p.add_argument("--times", default=None, help=f"evaluation times, comma-separated (default {DEFAULT_TIMES})")
    p.add_argument("--refresh", default="1d,1mo", help="refresh times, comma-separated (default 1d,1mo)")
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
    p.add_argument("--no-progress", action="store_true")


def build_config(args: argparse.Namespace):  # -> StudyConfig
    """The study config: ``--config`` (or the refresh defaults), then the command-line overrides."""
    from tsb_aihw.pipeline.config import load_study_config, study_config_from_dict

    if args.config:
        cfg = load_study_config(args.config).to_dict()
    else:
        cfg = {"preset": "pcm", "chips": 8, "times": DEFAULT_TIMES.split(","), "methods": ["tsb"],
               "model": {"name": "lenet3"}, "data": {"name": "mnist5k", "eval_limit": 400}}
    if args.quick:
        cfg["chips"] = 2
        cfg.setdefault("data", {})["eval_limit"] = 200
        cfg.setdefault("backbone", {}).update(full_epochs=1, early_epochs=1)
        cfg.setdefault("block", {})["epochs"] = 1
    sets = {("preset",): args.preset, ("chips",): args.chips, ("seed",): args.seed, ("device",): args.device,
            ("model", "name"): args.model, ("data", "name"): args.dataset, ("data", "eval_limit"): args.eval_limit,
            ("backbone", "early_epochs"): args.early_epochs, ("backbone", "full_epochs"): args.full_epochs,
            ("block", "epochs"): args.block_epochs, ("block", "n_reads"): args.n_reads,
            ("times",): args.times.split(",") if args.times else None}
    for path, value in sets.items():
        if value is None:
            continue
        node = cfg
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return study_config_from_dict(cfg, args.config or "tsb-aihw refresh")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.refresh import run_refresh_study

    cfg = build_config(args)
    t0 = time.perf_counter()
    res = run_refresh_study(cfg, args.out, refresh_times=[r for r in args.refresh.split(",") if r],
                            progress=not args.no_progress, controls=not args.no_controls,
                            reference=not args.no_reference)
    print(f"done in {time.perf_counter() - t0:.0f} s; see {args.out}/results.json and "
          f"{args.out}/refresh_accuracy_vs_time.png")
    labels = res["time_labels"]
    for arm, a in res["arms"].items():
        accs = ", ".join(f"{t} {100 * a['accuracy'][t]['mean']:.2f}" for t in labels)
        print(f"  {arm:12s} {accs}")
    if "tsb_refresh" in res["arms"]:
        d = res["arms"]["tsb_refresh"]["minus_tsb"][labels[-1]]
        print(f"  refresh - no refresh at {labels[-1]}: {100 * d['mean']:+.2f} pp "
              f"[{100 * d['ci95_low']:+.2f}, {100 * d['ci95_high']:+.2f}] (paired, 95% CI)")
    c = res["cost"]
    print(f"  refresh cost: {c['refresh_total_pulses']:,.0f} pulses in {len(c['per_refresh'])} refreshes "
          f"({100 * c['refresh_pulses_vs_chip']:.2f}% of programming the chip once, "
          f"{c['chip_pulses']:,.0f} pulses)")
    return 0
