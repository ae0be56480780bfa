"""``tsb-aihw drift``: accuracy of a model over drift time on simulated chips, for one or more presets."""
from __future__ import annotations

import argparse

from tsb_aihw.cli.common import add_executor_arguments, add_out_arguments, csv_list, executor_from

NAME = "drift"
HELP = ("drift-over-time study: a model (checkpoint, or trained here) on N chips per device preset, "
        "accuracy mean ± std and 95%% CI at each time; resumes finished chips")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_out_arguments(p)
    p.add_argument("--model", default=None, help="registry model name (default lenet3; see tsb_aihw.list_models())")
    p.add_argument("--width", type=float, default=None, help="width multiplier of the model (default 1)")
    p.add_argument("--dataset", default=None, help="dataset name (default mnist5k; digits, mnist, cifar10, "
                   "imagefolder:PATH)")
    p.add_argument("--checkpoint", default=None,
                   help="digital state dict of the model (torch.save(model.state_dict(), path)); without it the "
                        "model is trained here with noise injection and kept in OUT/checkpoints/model.pt")
    p.add_argument("--epochs", type=int, default=None, help="noise-injection training epochs when no checkpoint "
                   "(default 10)")
    p.add_argument("--preset", action="append", default=None,
                   help="device preset name or YAML path (repeatable; default pcm)")
    p.add_argument("--times", default=None, help="comma-separated times after programming (default "
                   "0s,1s,1h,1d,1mo,1y)")
    p.add_argument("--chips", type=int, default=None, help="Monte-Carlo chips per preset (default 20)")
    p.add_argument("--verify", default=None, help="which weights are write-verified: none (default), all, or tsb "
                   "(only a trained shared block)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu (default), cuda, cuda:N or auto")
    add_executor_arguments(p, "(preset, chip) cells")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.config import DriftConfig, config_from
    from tsb_aihw.pipeline.drift_study import format_drift_table, run_drift_study

    flags = {"model": args.model, "width": args.width, "dataset": args.dataset, "checkpoint": args.checkpoint,
             "train_epochs": args.epochs, "presets": args.preset, "times": csv_list(args.times),
             "chips": args.chips, "verify": args.verify, "eval_limit": args.eval_limit, "seed": args.seed,
             "device": args.device}
    cfg = config_from(DriftConfig, {}, "", flags)
    with executor_from(args) as executor:
        result = run_drift_study(cfg, args.out, progress=not args.no_progress, executor=executor,
                                 threads=executor.threads, move_aside=args.move_aside)
    print(format_drift_table(result))
    print(f"see {args.out}/drift.json and {args.out}/accuracy_vs_time.png")
    return 0
