"""BN recalibration through AIHWKit's forward vs the fast path, on a finished study's chips (paired).

For each of the first ``--chips`` chips of the study that ``--config`` (and ``--sigma``) describe in ``--out``,
the fully trained backbone (b) is programmed as the study programs it, copied, and re-estimated both ways:
``off`` (AIHWKit's forward: what BN recalibration did before BN_RECALIBRATION_VERSION 2) and the study's
evaluation mode (``statistical`` by default). Each copy is then evaluated the study's way. Reports each way's
re-estimation seconds and accuracy per chip, the paired difference (mean, 95% CI) and the time ratio, and
writes ``benchmarks/bn_recal_eval.json``. Trains nothing: the study's checkpoints must exist.

    .venv/bin/python benchmarks/bn_recal_eval.py --config configs/cifar10-resnet18.yaml --sigma 0.2 \\
        --out runs/cifar10-resnet18-s02 --chips 4
"""
from __future__ import annotations

import argparse
import copy
import json
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--sigma", type=float, default=None, help="the study's --sigma, if it was run with one")
    p.add_argument("--out", required=True, help="the study's --out (its checkpoints are loaded, never trained)")
    p.add_argument("--chips", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(HERE / "bn_recal_eval.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.chip import Chip
    from tsb_aihw.analog.fast_eval import fast_eval_mode
    from tsb_aihw.evaluation.accuracy import chip_accuracy
    from tsb_aihw.evaluation.stats import summarize
    from tsb_aihw.pipeline.config import at_sigmas
    from tsb_aihw.pipeline.deploy import recalibrate_chip_bn
    from tsb_aihw.pipeline.methods import BASE_METHODS
    from tsb_aihw.pipeline.studies import study_folders
    from tsb_aihw.pipeline.tasks import StudyContext
    from tsb_aihw.sweeps.options import load_sweep_config
    from tsb_aihw.utils.memory import keep_freed_memory
    from tsb_aihw.utils.provenance import provenance

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    cfg, _ = load_sweep_config(args.config, {}, what="study config")
    if args.sigma is not None:
        cfg = at_sigmas(cfg, [args.sigma])[0]
    mode = fast_eval_mode(cfg.fast_eval)
    if mode == "off":  # checked before the study's data and checkpoints are loaded
        raise SystemExit(f"{args.config}: the study evaluates with fast_eval off, so there is no fast path to compare "
                         "with AIHWKit's forward; run a study with fast_eval exact or statistical")
    ctx = StudyContext(cfg, Path(args.out) / study_folders([cfg])[0], progress=False, can_train=False)
    spec, models = BASE_METHODS["bn_recalibration"], ctx.models
    ways = ("off", mode)
    rows = []
    for i in range(args.chips):
        analog = to_analog(models.digital_model(spec), ctx.preset, verify=spec.verify).eval()
        chip = Chip(analog, ctx.preset, cfg.seed, i)
        chip.program()
        row: dict[str, float | int] = {"chip": i}
        for way in ways:
            twin = copy.deepcopy(chip)  # the same programmed chip, re-estimated each way as a BN cell does
            t0 = time.perf_counter()
            recalibrate_chip_bn(twin, models, fast=way)
            row[f"{way}_s"] = time.perf_counter() - t0
            row[f"{way}_acc"] = chip_accuracy(twin, models.data.test, 0.0, device=cfg.device, fast=cfg.fast_eval)
        rows.append(row)
        print(f"chip {i}: " + ", ".join(f"{w} {row[f'{w}_acc']:.4f} in {row[f'{w}_s']:.1f} s" for w in ways),
              flush=True)
    diff = summarize(float(r[f"{mode}_acc"]) - float(r["off_acc"]) for r in rows)
    time_ratio = sum(float(r[f"{mode}_s"]) for r in rows) / sum(float(r["off_s"]) for r in rows)
    summary = {"mode": mode, "paired_acc_diff": diff.to_dict(), "time_over_off": time_ratio,
               **{f"{w}_acc": summarize(float(r[f"{w}_acc"]) for r in rows).to_dict() for w in ways}}
    print(f"{mode} - off accuracy: {diff.mean * 100:+.2f} pp [{diff.ci95_low * 100:+.2f}, {diff.ci95_high * 100:+.2f}]; "
          f"time {time_ratio:.3f}x")
    Path(args.json).write_text(json.dumps({"config": vars(args), "study": cfg.to_dict(), "provenance": provenance().to_dict(),
                                           "rows": rows, "summary": summary}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
