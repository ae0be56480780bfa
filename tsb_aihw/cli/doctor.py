"""``tsb-aihw doctor``: check this Python's pinned stack (``stack.STACKS``) and that both AIHWKit tile kinds run."""
from __future__ import annotations

import argparse

from tsb_aihw.stack import check_stack

NAME = "doctor"
HELP = ("check the Python version and its pinned torch/torchvision/aihwkit, and run a forward through C++ and "
        "torch AIHWKit tiles")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    rep = check_stack()
    print(rep.format())
    return 0 if rep.ok else 1
