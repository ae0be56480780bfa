"""``tsb-aihw compare A#SEL B#SEL``: the paired per-chip difference of two results on the same chips."""
from __future__ import annotations

import argparse
import json

NAME = "compare"
HELP = ("paired difference A - B of two results on the same chips (matched by chip fingerprint): mean, "
        "95-percent t-CI and on how many chips A is better; A and B are RESULT#SELECTOR with RESULT a results.json, "
        "sweep.json or frontier.json (or its folder) and SELECTOR a method (tsb), a sweep point (2|tsb) or a frontier "
        "budget/method (0.2/tsb)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="RESULT#SELECTOR, e.g. runs/sweep/sweep.json#2|tsb (quote the |)")
    p.add_argument("b", help="RESULT#SELECTOR, e.g. results/cifar10-vgg8-sigma0.2#tsb")
    p.add_argument("--time", default=None, help="time label to compare at (default: each result's first, e.g. 0s)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.records.pairing import load_chip_accuracies, paired_difference

    res = paired_difference(load_chip_accuracies(args.a, args.time), load_chip_accuracies(args.b, args.time))
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0
    d = res.difference
    print(f"A: {res.a.source}  ({res.a.label})")
    print(f"B: {res.b.source}  ({res.b.label})")
    print(f"A - B over {d.n} chips: {d.mean * 100:+.2f} pp [{d.ci95_low * 100:+.2f}, {d.ci95_high * 100:+.2f}] "
          f"(95% t-CI), A better on {res.a_better}/{d.n} chips")
    if res.paired_by == "chip index":
        print("paired by chip index: both come from one result file on one device, so chip i is the same seeded "
              "chip (their fingerprints differ because the methods program other weights)")
    return 0
