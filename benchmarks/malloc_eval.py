"""Page faults in a chip evaluation: glibc's default allocator behaviour vs ``keep_freed_memory``.

Each mode runs in its own fresh process (mallopt cannot be undone), alternating, ``--rounds`` times per model:
one programmed nvcim-gaussian chip (width 0.25, one torch thread) evaluates ``--images`` random 3x32x32
images at ``--batch`` after one warm-up pass; reports wall, user and system CPU seconds and minor page faults,
and writes ``benchmarks/malloc_eval.json``.

    .venv/bin/python benchmarks/malloc_eval.py --models resnet18 vgg8 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(model_name: str, images: int, batch: int) -> dict[str, float]:
    """Run in the child: program one chip, evaluate twice (warm-up, measured), return the measured pass."""
    warnings.filterwarnings("ignore")
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.chip import Chip
    from tsb_aihw.evaluation.accuracy import chip_accuracy
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model
    from tsb_aihw.utils.memory import keep_freed_memory

    state = keep_freed_memory()
    torch.set_num_threads(1)
    preset = load_preset("nvcim-gaussian", overrides={"noise.sigma": 0.1})
    model = get_model(model_name, num_classes=10, in_channels=3, width=0.25, input_size=32).eval()
    x = torch.randn(images, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    loader = DataLoader(TensorDataset(x, torch.zeros(images, dtype=torch.long)), batch_size=batch)
    chip = Chip(to_analog(model, preset, verify="none").eval(), preset, 0, 0)
    chip.program()
    chip_accuracy(chip, loader, 0.0)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    chip_accuracy(chip, loader, 0.0)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    return {"allocator": state, "wall_s": wall, "user_s": r1.ru_utime - r0.ru_utime,
            "system_s": r1.ru_stime - r0.ru_stime, "minor_faults": r1.ru_minflt - r0.ru_minflt,
            "max_rss_mb": r1.ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "vgg8"])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", nargs=3, metavar=("MODEL", "IMAGES", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(HERE / "malloc_eval.json"))
    args = p.parse_args()
    if args.child:
        print(json.dumps(one(args.child[0], int(args.child[1]), int(args.child[2]))))
        return
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for model in args.models:
        for _ in range(args.rounds):
            for mode in ("default", "keep"):  # alternating: both modes see the same load
                env = dict(os.environ, TSB_AIHW_MALLOC=mode, OMP_NUM_THREADS="1")
                out = subprocess.run([sys.executable, __file__, "--child", model, str(args.images), str(args.batch)],
                                     env=env, check=True, capture_output=True, text=True).stdout
                runs.setdefault(model, {}).setdefault(mode, []).append(json.loads(out.strip().splitlines()[-1]))
    summary = {}
    for model, modes in runs.items():
        med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "user_s", "system_s", "minor_faults",
                                                                      "max_rss_mb")} for m, rs in modes.items()}
        cpu = {m: v["user_s"] + v["system_s"] for m, v in med.items()}
        summary[model] = med | {"cpu_keep_over_default": cpu["keep"] / cpu["default"],
                                "wall_keep_over_default": med["keep"]["wall_s"] / med["default"]["wall_s"]}
        print(f"{model}: CPU s default {cpu['default']:.2f} (system {med['default']['system_s']:.2f}, "
              f"{med['default']['minor_faults']:.0f} faults) -> keep {cpu['keep']:.2f} "
              f"(system {med['keep']['system_s']:.2f}); wall ratio {summary[model]['wall_keep_over_default']:.2f}")
    from tsb_aihw.utils.provenance import provenance

    Path(args.out).write_text(json.dumps({"config": vars(args), "provenance": provenance().to_dict(), "runs": runs,
                                          "summary": summary}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
