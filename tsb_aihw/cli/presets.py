"""``tsb-aihw presets``: the shipped device presets as a table, or as JSON with ``--json``."""
from __future__ import annotations

import argparse
import json

NAME = "presets"
HELP = "list the device presets (device model, backend, DAC/ADC, drift, write-verify tolerance, key noise numbers)"

COLUMNS = ("name", "device model", "backend", "DAC/ADC bits", "drift", "verify tol", "key noise numbers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every preset in full as a JSON list")


def _bits(preset) -> str:
    p = preset.periphery
    if p.is_perfect:
        return "exact"
    return f"{p.dac_bits or '-'}/{p.adc_bits or '-'}"


def rows() -> list[dict[str, str]]:
    from tsb_aihw.devices import list_presets, load_preset

    out = []
    for name in list_presets():
        p = load_preset(name)
        out.append({
            "name": name,
            "device model": p.model,
            "backend": p.tile.backend,
            "DAC/ADC bits": _bits(p),
            "drift": "yes" if p.drifts else "no",
            "verify tol": f"{p.write_verify.tolerance:g}",
            "key noise numbers": p.key_numbers(),
        })
    return out


def format_table(table: list[dict[str, str]]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip(),
             "  ".join("-" * widths[c] for c in COLUMNS)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in table]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tsb_aihw.devices import list_presets, load_preset, presets_dir

    if args.json:
        print(json.dumps([load_preset(n).to_dict() for n in list_presets()], indent=2, sort_keys=True))
        return 0
    print(format_table(rows()))
    print(f"\npresets in {presets_dir()}; tolerance is a fraction of one device's range (weight models: of "
          f"max|W|). Details: docs/devices.md")
    return 0
