"""Flags several commands share: where cells run, and what to do with an ``--out`` that holds other results."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any


def add_executor_arguments(p: argparse.ArgumentParser, cells: str = "cells") -> None:
    """``--workers`` / ``--scheduler`` / ``--threads``: the one definition of where a command's cells run."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help=f"local worker processes for the {cells} (default "
                       "1: in this process); training always runs here first")
    where.add_argument("--scheduler", default=None, help=f"Dask scheduler address tcp://host:port: run the {cells} "
                       "on that cluster (needs pip install 'tsb-aihw[dask]'; --out on a shared filesystem)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per cell (default: 1 with --workers or "
                   "--scheduler, so results do not depend on the executor; else torch's default)")


def add_out_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    if default is None:
        p.add_argument("--out", required=True, help="output directory (resumable: a re-run skips finished cells)")
    else:
        p.add_argument("--out", default=default, help=f"output directory (default {default}; resumable)")
    p.add_argument("--move-aside", action="store_true", help="if --out holds another configuration's results, "
                   "rename it to OUT.moved-<time> first (nothing is deleted) instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_models_from_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-from", action="append", default=[], metavar="DIR",
                   help="take trained backbones and fixed blocks from DIR (a finished run's --out, or an exported "
                        "results/<study> folder) wherever they were trained for this config, instead of training "
                        "them again; repeatable")


def models_from(args: argparse.Namespace) -> list[str]:
    """The ``--models-from`` folders, each checked to exist before anything is trained."""
    from tsb_aihw.pipeline.adopt import check_sources

    check_sources(args.models_from)
    return list(args.models_from)


def executor_from(args: argparse.Namespace) -> Any:
    """The executor the flags ask for (checked before any training: a bad --scheduler fails here)."""
    from tsb_aihw.parallel import make_executor

    return make_executor(args.workers, args.scheduler, cell_threads(args))


def cell_threads(args: argparse.Namespace) -> int | None:
    parallel = bool(args.scheduler) or (args.workers or 1) > 1
    return args.threads if args.threads is not None else (1 if parallel else None)


def command_line(default: str = "tsb-aihw") -> str:
    """The command as typed (for reports); ``default`` when run without arguments (e.g. from Python)."""
    return "tsb-aihw " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else default


def csv_list(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; None stays None (flag not given)."""
    if text is None:
        return None
    return [v.strip() for v in text.split(",") if v.strip()]


def float_list(text: str | None, flag: str) -> list[float] | None:
    """``"0.1,0.2"`` -> ``[0.1, 0.2]`` for a numeric list flag; anything else is one clear error naming ``flag``."""
    from tsb_aihw.errors import ConfigError

    values = csv_list(text)
    if values is None:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give numbers separated by commas, e.g. {flag} 0.1,0.2") from None
