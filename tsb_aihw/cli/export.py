"""``tsb-aihw export --from OUT --to results/NAME``: a finished study's results and plain state dicts, to commit."""
from __future__ import annotations

import argparse

NAME = "export"
HELP = ("copy a finished study's results.json, report, tables, plots and trained models (plain state dicts, see "
        "models.json) into a folder to commit, e.g. results/cifar10-vgg8")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", required=True, help="the study's --out (or one preset folder of it)")
    p.add_argument("--to", dest="dest", required=True, help="destination folder (refused when not empty)")
    p.add_argument("--move-aside", action="store_true", help="if --to is not empty, rename it to TO.moved-<time> "
                   "first (nothing is deleted) instead of refusing")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.export import export_study

    written = export_study(args.source, args.dest, move_aside=args.move_aside)
    print(f"wrote {len(written)} files into {args.dest}")
    return 0
