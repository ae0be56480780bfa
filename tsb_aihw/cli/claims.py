"""``tsb-aihw claims DIR...``: TSB's gap-improvement claim under every definition, from a result's stored chips."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tsb_aihw.records.claims import ClaimsFile, DefinitionClaim

NAME = "claims"
HELP = ("score TSB's gap improvement over (b) under every definition (one reference, own reference, worst chip, "
        "5th-percentile chip, vanilla baseline) with paired-bootstrap CIs, from the per-chip accuracies a study or "
        "frontier stored (no training, no chips re-run); prints a table and writes claims_by_definition.json beside "
        "each result")

EPILOG = """\
Each table row is one TSB method (a frontier: one per budget); each cell is (b)'s gap / the method's gap with its
95% paired-bootstrap CI over chips, * where the CI's lower end is above 20x. See docs/results.md, "Which definition
gives the paper's numbers".

example:
  tsb-aihw claims results/cifar10-vgg8-sigma0.2 results/frontier-cifar10-vgg8-sigma0.2
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("paths", nargs="+", metavar="STUDY_OR_FRONTIER_DIR",
                   help="a study's or a frontier's results folder (or its results.json / frontier.json)")
    p.add_argument("--root", default=".", help="the repository root that the adopted-from paths a frontier records "
                   "are resolved against (default: the current directory)")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.pipeline.definitions import claims_for
    from tsb_aihw.utils.io import atomic_write_json

    root = Path(args.root).resolve()
    for raw in args.paths:
        dest, out = claims_for(raw, root)
        out = replace(out, command=f"tsb-aihw claims {raw}")
        print(definitions_table(out))
        atomic_write_json(dest, out.to_dict())
        print(f"wrote {dest}\n")
    return 0


def definitions_table(out: ClaimsFile) -> str:
    """The claims of one ``claims_by_definition.json``: a row per TSB method (per budget on a frontier), a column
    per definition, then the training speed-up (wall clock / image-passes)."""
    from tsb_aihw.records.claims import DEFINITIONS

    table = [["method", *DEFINITIONS, "speed-up"]]
    for label, c in out.rows().items():
        s = c.training_speedup
        table.append([label, *(_cell(c.definitions[d]) for d in DEFINITIONS),
                      f"{_x(s.wall_clock)} / {_x(s.image_passes)}"])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    sigma = f", sigma {out.sigma}" if out.sigma is not None else ""
    head = f"{out.source}: {out.model}{sigma}, reference (b) clean {100 * out.reference_accuracy:.2f}%"
    return "\n".join([head, *("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)])


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}x"


def _cell(d: DefinitionClaim) -> str:
    """One definition's ratio as the docs write it: 1.29x [1.11, 1.47], >= 92.6x, unbounded, undefined or n/a."""
    star = "*" if d.holds_20x else ""
    if not d.available:
        return "n/a"
    if d.kind == "estimate":
        assert d.ci95 is not None  # an estimate always has its CI
        lo, hi = d.ci95
        return f"{_x(d.gap_improvement)} [{lo:.3g}, {'inf' if hi is None else f'{hi:.3g}'}]{star}"
    if d.kind == "lower_bound":
        return f">= {_x(d.gap_improvement)}{star}"
    return f"{d.kind}{star}"
