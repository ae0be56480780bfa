"""TSB refresh (beyond the paper): re-train the tiny block late in a chip's life and re-write it.

The block is a few hundred weights, so it can be re-trained against the chip's *drifted* backbone (read back
at the refresh time) and re-written with write-verify at little cost. This study measures whether that pays
off, on the same chips, against three other arms:

- ``tsb``: the normal flow, block trained on the read-back at ``cfg.block.read_time`` and never touched again;
- ``tsb_refresh``: the same chip; at each refresh time the backbone is read back (``cfg.block.n_reads``
  reads averaged), a fresh block is trained on it exactly as at t = 0 and written into the block tile with
  write-verify;
- ``tsb_rewrite`` (control): at each refresh time the *original* block weights are re-written (write-verify
  again), no re-training: this separates "the block's own drift is reset" from "the block learns the
  backbone's drift";
- ``reference`` (optional): the fully trained noise-injection baseline (b), one-shot, on the same chips.

Drift semantics (AIHWKit 1.1: ``tile.drift_weights(t)`` always starts from the tile's last programmed
state; see shared notes ``aihwkit-1.1-facts.md`` section 5). Time ``t`` is chip time since the backbone was
programmed. Backbone tiles are drifted to ``t``. A re-written block tile has its own clock: at chip time
``t`` after a refresh at ``r`` it is drifted to ``t - r`` (its ν and drift-compensation baseline are drawn
afresh at the re-write, as a real re-programming would do); at ``t == r`` it holds its freshly programmed
weights (drift-compensation factor 1). Backbone drift and read noise are seeded by (chip, layer, tile,
chip time) exactly as :func:`tsb_aihw.pipeline.chip.drift_chip` does, so every arm sees the *same* backbone
noise at each time and the arms' differences are paired per chip.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from tsb_aihw.analog import read_back, to_analog
from tsb_aihw.analog.tiles import reset_drift_compensation
from tsb_aihw.devices import load_preset, programming_cost, tile_programming_stats
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation import evaluate_accuracy, format_time, parse_time, summarize
from tsb_aihw.models import get_tsb
from tsb_aihw.models.counting import is_tsb_name
from tsb_aihw.pipeline.chip import drift_chip, named_analog_tiles, program_chip
from tsb_aihw.pipeline.config import StudyConfig
from tsb_aihw.pipeline.study import CellStore, Study, deploy_block, train_chip_block
from tsb_aihw.plots import plot_accuracy_vs_time
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, json_fingerprint
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.seeding import derive_seed

ARMS = {
    "tsb": "TSB, block written once (t = 0)",
    "tsb_refresh": "TSB + refresh (re-trained, re-written)",
    "tsb_rewrite": "control: same block re-written, no re-training",
    "reference": "(b) noise-injection trained, one-shot",
}


def parse_refresh_times(refresh_times: Sequence[str | float], eval_times: Sequence[float]) -> list[float]:
    """Refresh times in seconds, ascending; each must be > 0 and before the last evaluation time."""
    if not refresh_times:
        raise ConfigError("no refresh times given; pass e.g. refresh_times=['1d', '1mo']")
    out = sorted({parse_time(r) for r in refresh_times})
    if out[0] <= 0:
        raise ConfigError("refresh times must be > 0 s after programming (t = 0 is the normal TSB write)")
    if out[-1] >= max(eval_times):
        raise ConfigError(f"refresh at {format_time(out[-1])} is not before the last evaluation time "
                          f"{format_time(max(eval_times))}: nothing would be evaluated after it; add evaluation "
                          "times after the last refresh (config times / --times)")
    return out


@torch.no_grad()
def drift_with_block_age(analog: nn.Module, t: float, chip_seed: int, block_written_at: float,
                         write_index: int) -> None:
    """Drift the backbone to chip time ``t`` and the block tile to ``t - block_written_at`` (its own clock).

    Backbone draws use :func:`drift_chip`'s seeds. Block draws are seeded by the write they belong to, so
    the three TSB arms share block noise while they hold the same block write.
    """
    if block_written_at <= 0:  # the block has the backbone's clock
        drift_chip(analog, t, chip_seed)
        return
    age = t - block_written_at
    if age < 0:
        raise ConfigError(f"internal: chip time {t} is before the block write at {block_written_at}")
    state = torch.random.get_rng_state()
    try:
        for name, j, _layer, tile in named_analog_tiles(analog):
            if is_tsb_name(name):
                if age == 0:  # freshly written: programmed weights, no drift compensation yet
                    tile.tile.set_weights(tile.programmed_weights)
                    reset_drift_compensation(tile)
                    continue
                torch.manual_seed(derive_seed(chip_seed, name, j, "drift", f"write{write_index}", repr(float(age))))
                tile.drift_weights(age)
            elif t > 0:
                torch.manual_seed(derive_seed(chip_seed, name, j, "drift", repr(float(t))))
                tile.drift_weights(t)
    finally:
        torch.random.set_rng_state(state)


def seeded_accuracy(analog: nn.Module, study: Study, seed: int) -> float:
    """Test accuracy with the periphery's per-MVM noise (ADC output noise) seeded, so arms that hold the
    same weights at a time get the same number and the arm differences are paired."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return evaluate_accuracy(analog, study.data.test, device=study.cfg.device, fast=study.cfg.fast_eval)


def seeded_read_back(analog: nn.Module, t: float, n_reads: int, seed: int) -> dict[str, torch.Tensor]:
    """:func:`read_back` with its read-noise draws seeded (torch's global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return read_back(analog, t=t, n_reads=n_reads)


def _block_stats(analog: nn.Module) -> dict[str, int]:
    """Programming counts of the block's tiles (their last programming)."""
    total: dict[str, int] = {}
    for name, _j, _layer, tile in named_analog_tiles(analog):
        if is_tsb_name(name):
            for k, v in tile_programming_stats(tile).items():
                total[k] = total.get(k, 0) + int(v)
    return total


def _write_block(analog: nn.Module, weight: torch.Tensor, seed: int) -> dict[str, int]:
    """Write new block weights into the block tile with write-verify (a new target), return its counts."""
    get_tsb(analog).conv.set_weights(weight)
    program_chip(analog, seed, only="tsb", new_target=True)
    return _block_stats(analog)


class RefreshRunner:
    """One chip at a time: the normal TSB write, then each arm over the evaluation times."""

    def __init__(self, study: Study, refresh: list[float], controls: bool):
        self.study, self.refresh, self.controls = study, refresh, controls
        self.cfg = study.cfg
        self.times = sorted(study.times)
        self.analog = to_analog(study.tsb_model(), study.preset, verify="tsb").eval()

    def _eval(self, chip_seed: int, t: float) -> float:
        return seeded_accuracy(self.analog, self.study, derive_seed(chip_seed, "eval", repr(float(t))))

    def _arm(self, chip_seed: int, writes: list[tuple[float, torch.Tensor | None]]) -> tuple[list[float], list[dict]]:
        """Evaluate at every time; ``writes`` = [(refresh time, block weight to write)] in time order."""
        accs, events = [], []
        pending = list(writes)
        at, index = 0.0, 0
        for t in self.times:
            while pending and pending[0][0] <= t:
                r, w = pending.pop(0)
                index += 1
                events.append(self._do_write(chip_seed, r, w, index))
                at = r
            drift_with_block_age(self.analog, t, chip_seed, at, index)
            accs.append(self._eval(chip_seed, t))
        return accs, events

    def _do_write(self, chip_seed: int, r: float, weight: torch.Tensor | None, index: int) -> dict[str, Any]:
        b = self.cfg.block
        train_s = 0.0
        retrain = weight is None
        if retrain:  # refresh: read the drifted backbone at r, train a fresh block on it
            weights = seeded_read_back(self.analog, r, b.n_reads, derive_seed(chip_seed, "refresh-read", index))
            weight, train_s = train_chip_block(self.study.tsb_model(), weights, self.cfg, self.study.data,
                                               derive_seed(chip_seed, "refresh-train", index))
        stats = _write_block(self.analog, weight, derive_seed(chip_seed, "block-write", index))
        return {"time_s": r, "train_s": train_s, "block_pulses": stats["pulses"], "block_reads": stats["reads"],
                "block_cells": stats["cells"], "block_failed_cells": stats["failed_cells"],
                "backbone_reads_devices": _backbone_devices(self.analog) * b.n_reads if retrain else 0}

    def run_chip(self, chip: int) -> dict[str, Any]:
        cfg, b = self.cfg, self.cfg.block
        chip_seed = derive_seed(cfg.seed, "chip", chip)  # the same chips as Study.run_chip
        program_chip(self.analog, chip_seed)
        weights = seeded_read_back(self.analog, b.read_time, b.n_reads, derive_seed(chip_seed, "read"))
        w0, train0 = train_chip_block(self.study.tsb_model(), weights, cfg, self.study.data,
                                      derive_seed(chip_seed, "block-train"))
        deploy_block(self.analog, w0, chip_seed)
        chip_cost = programming_cost(self.analog, self.study.preset).to_dict()
        first = _block_stats(self.analog)
        out: dict[str, Any] = {"chip_cost": chip_cost, "block_write0": first, "block_train0_s": train0}
        out["tsb"], _ = self._arm(chip_seed, [])
        out["tsb_refresh"], out["refresh_events"] = self._arm(chip_seed, [(r, None) for r in self.refresh])
        if self.controls:
            deploy_block(self.analog, w0, chip_seed)  # back to the original block write
            out["tsb_rewrite"], out["rewrite_events"] = self._arm(chip_seed, [(r, w0) for r in self.refresh])
        return out


def _backbone_devices(analog: nn.Module) -> int:
    """Devices read by one read-back of the backbone (cells x devices per cell, from the tiles' stats)."""
    return sum(tile_programming_stats(tile)["devices"] for name, _j, _l, tile in named_analog_tiles(analog)
               if not is_tsb_name(name))


def _reference_chip(study: Study, analog: nn.Module, chip: int) -> list[float]:
    chip_seed = derive_seed(study.cfg.seed, "chip", chip)
    program_chip(analog, chip_seed)
    accs = []
    for t in sorted(study.times):
        drift_chip(analog, t, chip_seed)
        accs.append(seeded_accuracy(analog, study, derive_seed(chip_seed, "eval", repr(float(t)))))
    return accs




def _series(per_chip: list[list[float]], times: list[float]) -> dict[str, Any]:
    sums = [summarize([c[i] for c in per_chip]) for i in range(len(times))]
    return {"times": times, "mean": [s.mean for s in sums], "ci_low": [s.ci95_low for s in sums],
            "ci_high": [s.ci95_high for s in sums]}


def run_refresh_study(cfg: StudyConfig, out: str | Path, refresh_times: Sequence[str | float] = ("1d", "1mo"),
                      progress: bool = True, controls: bool = True, reference: bool = True) -> dict[str, Any]:
    """Run (or resume) the refresh study on ``cfg.chips`` chips; writes results.json, CSVs and the plot.

    Uses ``cfg.preset``, ``cfg.times`` (evaluation times, chip time after programming), the model/data/
    backbone/block settings; ``cfg.methods`` is ignored. ``controls`` adds the re-write-only arm,
    ``reference`` the one-shot baseline (b) (trains the full backbone once, checkpointed).
    """
    t0 = time.perf_counter()
    preset = load_preset(cfg.preset, **cfg.preset_overrides)
    if not preset.drifts:  # checked before the study loads data or trains anything
        raise ConfigError(f"preset {preset.name!r} does not drift, so a refresh cannot change anything; "
                          "use a drifting preset such as 'pcm' or 'rram'")
    refresh = parse_refresh_times(refresh_times, [parse_time(t) for t in cfg.times])
    study = Study(cfg, Path(out), progress=progress)
    times = sorted(study.times)
    key = {"config": cfg.to_dict(), "refresh": refresh, "controls": controls, "reference": reference,
           "preset": study.preset.to_dict(), "version": 1}
    cells = CellStore(study.out / "refresh_cells.json", json_fingerprint(key))
    runner = RefreshRunner(study, refresh, controls)
    ref_analog = to_analog(study.backbone("full"), study.preset, verify="none").eval() if reference else None
    rows = []
    for chip in tqdm(range(cfg.chips), desc=f"refresh study ({study.preset.name})", disable=not progress):
        cell = cells.get("refresh", chip)
        if cell is None:
            start = time.perf_counter()
            cell = runner.run_chip(chip)
            if ref_analog is not None:
                cell["reference"] = _reference_chip(study, ref_analog, chip)
            cell["seconds"] = time.perf_counter() - start
            cells.put("refresh", chip, cell)
        rows.append(cell)
    results = assemble(study, rows, times, refresh)
    results["wall_time_s"] = time.perf_counter() - t0
    write_outputs(results, study.out)
    return results


def assemble(study: Study, rows: list[dict[str, Any]], times: list[float], refresh: list[float]) -> dict[str, Any]:
    """Per-arm summaries, paired per-chip differences against ``tsb`` and the refresh cost."""
    cfg = study.cfg
    labels = [format_time(t) for t in times]
    arms = [a for a in ARMS if a in rows[0]]
    reference_acc = evaluate_accuracy(study.backbone("full"), study.data.test, device=cfg.device)
    arm_out = {}
    for arm in arms:
        per_chip = [r[arm] for r in rows]
        entry: dict[str, Any] = {
            "label": ARMS[arm], "per_chip": per_chip,
            "accuracy": {lab: summarize([c[i] for c in per_chip]).to_dict() for i, lab in enumerate(labels)},
        }
        if arm != "tsb":
            entry["minus_tsb"] = {lab: summarize([r[arm][i] - r["tsb"][i] for r in rows]).to_dict()
                                  for i, lab in enumerate(labels)}
        arm_out[arm] = entry

    def mean(values: list[float]) -> float:
        return float(sum(values) / len(values))

    cost = {
        "chip_pulses": mean([r["chip_cost"]["pulses"] for r in rows]),
        "block_write0_pulses": mean([r["block_write0"]["pulses"] for r in rows]),
        "block_weights": rows[0]["block_write0"]["cells"],
        "block_train0_s": mean([r["block_train0_s"] for r in rows]),
        "per_refresh": [{"time": format_time(r), "block_pulses": mean([row["refresh_events"][i]["block_pulses"]
                                                                       for row in rows]),
                         "block_reads": mean([row["refresh_events"][i]["block_reads"] for row in rows]),
                         "train_s": mean([row["refresh_events"][i]["train_s"] for row in rows]),
                         "backbone_device_reads": mean([row["refresh_events"][i]["backbone_reads_devices"]
                                                        for row in rows])}
                        for i, r in enumerate(refresh)],
    }
    cost["refresh_total_pulses"] = sum(p["block_pulses"] for p in cost["per_refresh"])
    cost["refresh_pulses_vs_chip"] = cost["refresh_total_pulses"] / cost["chip_pulses"]
    tsb = get_tsb(study.tsb_model())
    return {
        "config": cfg.to_dict(), "seed": cfg.seed, "provenance": provenance(),
        "preset": study.preset.to_dict() | {"name": study.preset.name},
        "model": cfg.model.name, "dataset": {"name": cfg.data.name, "split_note": study.data.test_info.split_note,
                                             "eval_size": len(study.data.test.dataset)},
        "chips": len(rows), "times": times, "time_labels": labels,
        "refresh_times": refresh, "refresh_labels": [format_time(r) for r in refresh],
        "block": {"k": tsb.k, "weights": tsb.conv.weight.numel(), "epochs": cfg.block.epochs,
                  "n_reads": cfg.block.n_reads},
        "reference_accuracy": reference_acc,
        "reference_definition": "clean digital test accuracy of (b), the fully trained noise-injection backbone",
        "drift_semantics": "backbone tiles drift to chip time t; a block re-written at r drifts to t - r (own "
                           "clock, fresh drift coefficients); all arms share the backbone's drift/read draws",
        "arms": arm_out, "cost": cost,
        "chip_seconds": [r.get("seconds") for r in rows],
    }


def write_outputs(results: dict[str, Any], out: Path) -> list[Path]:
    """results.json, refresh_chips.csv (one row per arm, chip, time), refresh_summary.csv and the plot."""
    labels = results["time_labels"]
    chip_rows, summary_rows = [], []
    for arm, a in results["arms"].items():
        for chip, accs in enumerate(a["per_chip"]):
            chip_rows += [{"arm": arm, "chip": chip, "time_s": t, "time": lab, "accuracy": acc}
                          for t, lab, acc in zip(results["times"], labels, accs)]
        for t, lab in zip(results["times"], labels):
            s = a["accuracy"][lab]
            d = a.get("minus_tsb", {}).get(lab, {})
            summary_rows.append({"arm": arm, "label": a["label"], "time_s": t, "time": lab, "chips": s["n"],
                                 "acc_mean": s["mean"], "acc_std": s["std"], "acc_ci95_low": s["ci95_low"],
                                 "acc_ci95_high": s["ci95_high"], "minus_tsb_mean": d.get("mean"),
                                 "minus_tsb_ci95_low": d.get("ci95_low"), "minus_tsb_ci95_high": d.get("ci95_high")})
    atomic_write_csv(out / "refresh_chips.csv", chip_rows)
    atomic_write_csv(out / "refresh_summary.csv", summary_rows)
    arms = [results["arms"][k] for k in ARMS if k in results["arms"]]  # fixed order: fixed colours
    series = {a["label"]: _series(a["per_chip"], results["times"]) for a in arms}
    c = results["cost"]
    events = {f"refresh {p['time']} ({p['block_pulses']:,.0f} pulses)": r
              for p, r in zip(c["per_refresh"], results["refresh_times"])}
    plots = plot_accuracy_vs_time(series, out / "refresh_accuracy_vs_time", reference=results["reference_accuracy"],
                                  title=f"{results['model']} on {results['preset']['name']}: TSB refresh "
                                        f"({results['chips']} chips)", events=events)
    results["plots"] = [p.name for p in plots]
    atomic_write_json(out / "results.json", results)
    return [out / "results.json", out / "refresh_chips.csv", out / "refresh_summary.csv", *plots]
