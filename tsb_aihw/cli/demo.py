"""``tsb-aihw demo``: the main job (what ``make demo`` runs)."""
from __future__ import annotations

import argparse
import time

from tsb_aihw.cli.common import add_executor_arguments, add_out_arguments, command_line, executor_from

NAME = "demo"
HELP = "TSB vs baselines on simulated chips: lenet3 on MNIST-5k, nvcim-gaussian and PCM with drift"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out_arguments(p, default="runs/demo")
    p.add_argument("--model", default="lenet3", help="backbone name (see tsb_aihw.list_models())")
    p.add_argument("--dataset", default="mnist5k", help="dataset name, or imagefolder:PATH")
    p.add_argument("--preset", action="append", help="device preset name or YAML path (repeatable; default: "
                   "nvcim-gaussian and pcm)")
    p.add_argument("--sigma", type=float, default=None, help="device variation sigma (noise.sigma) of the presets "
                   "that have one (nvcim-gaussian); an error for a --preset without it")
    p.add_argument("--chips", type=int, default=None, help="Monte-Carlo chips per method (default 20; 8 for the "
                   "drift study of a drifting preset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--quick", action="store_true", help="1-minute smoke run (few chips, epochs, images)")
    add_executor_arguments(p, "(method, chip) cells")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.parallel import use_executor
    from tsb_aihw.pipeline.claims import format_claim
    from tsb_aihw.pipeline.demo import config_summary, demo_configs
    from tsb_aihw.pipeline.studies import run_studies

    configs = demo_configs(model=args.model, dataset=args.dataset, presets=args.preset, chips=args.chips,
                           seed=args.seed, quick=args.quick, device=args.device, sigma=args.sigma)
    for c in configs:
        print(f"study: {config_summary(c)}", flush=True)
    t0 = time.perf_counter()
    with executor_from(args) as executor, use_executor(executor):
        res = run_studies(args.out, configs, command=command_line("tsb-aihw demo"),
                          progress=not args.no_progress, move_aside=args.move_aside)
    print(f"done in {time.perf_counter() - t0:.0f} s; see {args.out}/report.md")
    for name, claims in res.claims.items():
        print(f"  {name}: " + "; ".join(f"{k} {format_claim(c)}" for k, c in claims.headline().items()))
    return 0
