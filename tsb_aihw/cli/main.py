"""Entry point of ``tsb-aihw``: builds the parser from the command modules, turns user errors into exit 2."""
from __future__ import annotations

import argparse
import sys
from types import ModuleType
from typing import Sequence

from tsb_aihw.cli import claims, compare, demo, doctor, drift, export, frontier, presets, refresh, run, sweep
from tsb_aihw.errors import TSBError

# Each module defines NAME, HELP, add_arguments(parser) and run(args) -> int.
COMMANDS: tuple[ModuleType, ...] = (doctor, presets, demo, run, sweep, drift, refresh, frontier, compare, claims,
                                    export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsb-aihw",
                                     description="TSB deployment on simulated analog NVM chips (AIHWKit).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from tsb_aihw.utils.memory import keep_freed_memory

    args = build_parser().parse_args(argv)
    try:
        keep_freed_memory()  # a third less CPU per chip evaluation (tsb_aihw/utils/memory.py)
        return int(args._run(args) or 0)
    except TSBError as exc:
        print(f"tsb-aihw {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tsb-aihw {args.command}: interrupted; finished results are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
