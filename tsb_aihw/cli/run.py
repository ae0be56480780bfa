"""``tsb-aihw run --config FILE``: one study from a YAML config (e.g. configs/vgg8-cifar10.yaml)."""
from __future__ import annotations

import argparse
import shlex
import sys

NAME = "run"
HELP = "run one TSB study (all methods, Monte-Carlo chips) from a YAML config; resumes finished cells"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML study config (see configs/)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--chips", type=int, default=None, help="override the config's chip count")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local worker processes for the (method, chip) "
                       "cells (default 1: in this process); training always runs here first")
    where.add_argument("--scheduler", default=None, help="Dask scheduler address tcp://host:port: run the cells on "
                       "that cluster (needs pip install 'tsb-aihw[dask]'; --out on a shared filesystem)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: 1 with --workers or "
                   "--scheduler, else torch's default)")
    p.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.parallel import make_executor, use_executor
    from tsb_aihw.pipeline.config import load_study_config
    from tsb_aihw.pipeline.demo import run_demo

    cfg = load_study_config(args.config)
    for attr in ("chips", "seed", "device"):
        if getattr(args, attr) is not None:
            setattr(cfg, attr, getattr(args, attr))
    command = "tsb-aihw " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cfg.validate()
    parallel = bool(args.scheduler) or (args.workers or 1) > 1
    threads = args.threads if args.threads is not None else (1 if parallel else None)
    with make_executor(args.workers, args.scheduler, threads) as executor, use_executor(executor):
        run_demo(args.out, [cfg], command=command, progress=not args.no_progress)
    print(f"see {args.out}/report.md")
    return 0
