"""``tsb-aihw run --config FILE``: one study from a YAML config (e.g. configs/vgg8-cifar10.yaml)."""
from __future__ import annotations

import argparse

from tsb_aihw.cli.common import (
    add_executor_arguments,
    add_models_from_argument,
    add_out_arguments,
    command_line,
    executor_from,
    float_list,
    models_from,
)

NAME = "run"
HELP = "run one TSB study (all methods, Monte-Carlo chips) from a YAML config; resumes finished cells"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML study config (see configs/)")
    add_out_arguments(p)
    add_models_from_argument(p)
    p.add_argument("--chips", type=int, default=None, help="override the config's chip count")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    p.add_argument("--sigma", default=None, help="comma-separated device sigmas (noise.sigma): one study per value, "
                   "its backbones trained at it (a sigma sweep instead deploys one trained set at every value)")
    add_executor_arguments(p, "(method, chip) cells")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.parallel import use_executor
    from tsb_aihw.pipeline.config import at_sigmas
    from tsb_aihw.pipeline.studies import run_studies
    from tsb_aihw.sweeps.options import load_sweep_config

    # a config may carry a sweep: section for `tsb-aihw sweep`; `run` deploys its base study
    cfg, _sweeps = load_sweep_config(args.config, {"chips": args.chips, "seed": args.seed, "device": args.device},
                                     what="study config")
    configs = [cfg]
    sigmas = float_list(args.sigma, "--sigma")
    if sigmas is not None:
        configs = at_sigmas(cfg, sigmas)
    sources = models_from(args)
    with executor_from(args) as executor, use_executor(executor):
        run_studies(args.out, configs, command=command_line(), progress=not args.no_progress,
                    move_aside=args.move_aside, models_from=sources)
    print(f"see {args.out}/report.md")
    return 0
