"""``tsb-aihw drift``: accuracy of a model over drift time on simulated chips, for one or more presets."""
from __future__ import annotations

import argparse

NAME = "drift"
HELP = ("drift-over-time study: a model (checkpoint, or trained here) on N chips per device preset, "
        "accuracy mean ± std and 95%% CI at each time; resumes finished chips")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (drift.json, drift_summary.csv, plots)")
    p.add_argument("--model", default="lenet3", help="registry model name (see tsb_aihw.list_models())")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the model")
    p.add_argument("--dataset", default="mnist5k", help="dataset name (digits, mnist5k, mnist, cifar10, imagefolder:PATH)")
    p.add_argument("--checkpoint", default=None,
                   help="digital state dict of the model (torch.save(model.state_dict(), path)); without it the "
                        "model is trained here with noise injection and kept as OUT/model.pt")
    p.add_argument("--epochs", type=int, default=10, help="noise-injection training epochs when no checkpoint")
    p.add_argument("--preset", action="append", default=None,
                   help="device preset name or YAML path (repeatable; default pcm)")
    p.add_argument("--times", default="0,1s,1h,1d,1mo,1y", help="comma-separated times after programming")
    p.add_argument("--chips", type=int, default=20, help="Monte-Carlo chips per preset (>= 2)")
    p.add_argument("--verify", default="none", choices=("none", "all", "tsb"),
                   help="which weights are write-verified (tsb: only a trained shared block)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.drift_study import DriftStudyConfig, drift_study_from_config, format_drift_table
    from tsb_aihw.utils.device import resolve_device

    resolve_device(args.device)  # fail before any training on a missing GPU
    cfg = DriftStudyConfig(model=args.model, width=args.width, dataset=args.dataset, presets=args.preset or ["pcm"],
                           times=[t.strip() for t in args.times.split(",") if t.strip()], chips=args.chips,
                           seed=args.seed, verify=args.verify, checkpoint=args.checkpoint, train_epochs=args.epochs,
                           eval_limit=args.eval_limit, device=args.device)
    result = drift_study_from_config(cfg, args.out, progress=not args.no_progress)
    print(format_drift_table(result))
    print(f"see {args.out}/drift.json and {args.out}/accuracy_vs_time.png")
    return 0
