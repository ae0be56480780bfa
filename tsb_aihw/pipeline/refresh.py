"""TSB refresh (beyond the paper): re-train the tiny block late in a chip's life and re-write it.

The block is a few hundred weights, so it can be re-trained against the chip's *drifted* backbone (read back
at the refresh time) and re-written with write-verify at little cost. This study measures whether that pays
off, on the same chips, against three other arms:

- ``tsb``: the normal flow, block trained on the read-back at ``block.read_time`` (after BN is re-estimated
  through the chip, with ``block.recalibrate_bn``) and never touched again;
- ``tsb_refresh``: the same chip; at each refresh time the backbone is read back (``block.n_reads`` reads
  averaged), a fresh block is trained on it exactly as at t = 0 and written into the block tile with
  write-verify;
- ``tsb_rewrite`` (control): at each refresh time the *original* block weights are re-written (write-verify
  again), no re-training: this separates "the block's own drift is reset" from "the block learns the
  backbone's drift";
- ``reference`` (optional): the fully trained noise-injection baseline (b), one-shot, on the same chips.

Drift semantics (AIHWKit 1.1: ``tile.drift_weights(t)`` always starts from the tile's last programmed state;
docs/notes/aihwkit-1.1-facts.md section 5). Time ``t`` is chip time since the backbone was programmed. A
re-written block tile has its own clock (:meth:`tsb_aihw.analog.chip.Chip.drift`): at chip time ``t`` after a
refresh at ``r`` it is drifted to ``t - r``, with fresh drift coefficients. Every arm is the same
:class:`~tsb_aihw.analog.chip.Chip`, so the arms see the same backbone noise and their differences are paired.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tsb_aihw.analog import to_analog
from tsb_aihw.analog.chip import Chip, named_analog_tiles
from tsb_aihw.devices import programming_cost, tile_programming_stats
from tsb_aihw.evaluation import format_time
from tsb_aihw.evaluation.accuracy import chip_accuracy
from tsb_aihw.evaluation.stats import paired_differences, summaries_by_time, time_series
from tsb_aihw.evaluation.times import parse_times
from tsb_aihw.models import get_tsb
from tsb_aihw.models.counting import is_tsb_name
from tsb_aihw.parallel.cells import ChipTask, run_cells, run_chip_task, sharing
from tsb_aihw.parallel.executor import Executor
from tsb_aihw.pipeline.config import RefreshConfig, config_from
from tsb_aihw.pipeline.deploy import recalibrate_chip_bn
from tsb_aihw.pipeline.methods import method_spec
from tsb_aihw.pipeline.study import study_identity
from tsb_aihw.pipeline.tasks import StudyContext
from tsb_aihw.pipeline.trained import train_block_for_chip
from tsb_aihw.plots import plot_accuracy_vs_time
from tsb_aihw.records import (
    DatasetRecord,
    PresetRecord,
    RefreshArm,
    RefreshCell,
    RefreshCost,
    RefreshResult,
    RefreshWrite,
    load_record,
)
from tsb_aihw.records.refresh import RefreshEvent
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, json_fingerprint
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.store import ResultStore

CELL_VERSION = 2
ARMS = {
    "tsb": "TSB, block written once (t = 0)",
    "tsb_refresh": "TSB + refresh (re-trained, re-written)",
    "tsb_rewrite": "control: same block re-written, no re-training",
    "reference": "(b) noise-injection trained, one-shot",
}


def _block_stats(analog: nn.Module) -> dict[str, int]:
    """Programming counts of the block's tiles (their last programming)."""
    total: dict[str, int] = {}
    for name, _j, _layer, tile in named_analog_tiles(analog):
        if is_tsb_name(name):
            for k, v in tile_programming_stats(tile).items():
                total[k] = total.get(k, 0) + int(v)
    return total


def _backbone_devices(analog: nn.Module) -> int:
    """Devices read by one read-back of the backbone (cells x devices per cell, from the tiles' stats)."""
    return sum(tile_programming_stats(tile)["devices"] for name, _j, _l, tile in named_analog_tiles(analog)
               if not is_tsb_name(name))


class RefreshRunner:
    """One chip at a time: the normal TSB write, then each arm over the evaluation times."""

    def __init__(self, ctx: StudyContext, cfg: RefreshConfig):
        self.ctx, self.cfg = ctx, cfg
        self.with_bn = method_spec("tsb", cfg.block).bn_recalibration  # the study's tsb flow decides, as in its cells
        self.times = sorted(ctx.times)
        self.refresh = sorted(parse_times(cfg.refresh_times))
        self.analog = to_analog(ctx.models.tsb_model(), ctx.preset, verify="tsb").eval()
        self.reference = (to_analog(ctx.models.backbone("full"), ctx.preset, verify="none").eval()
                          if cfg.reference else None)

    def _arm(self, chip: Chip,
             writes: list[tuple[float, torch.Tensor | None]]) -> tuple[list[float], list[RefreshEvent]]:
        """Evaluate at every time; ``writes`` = [(refresh time, block weight or None = re-train)] in time order."""
        accs, events = [], []
        pending = list(writes)
        for t in self.times:
            while pending and pending[0][0] <= t:
                r, w = pending.pop(0)
                events.append(self._write(chip, r, w))
            accs.append(chip_accuracy(chip, self.ctx.data.test, t, device=self.cfg.device, fast=self.cfg.fast_eval,
                                      product=self.cfg.fast_eval_product))
        return accs, events

    def _write(self, chip: Chip, r: float, weight: torch.Tensor | None) -> RefreshEvent:
        train_s = 0.0
        retrain = weight is None
        if weight is None:  # refresh: read the drifted backbone at r, train a fresh block on it
            weight, train_s = train_block_for_chip(self.ctx.models, chip, r, write=chip.block_writes + 1,
                                                   with_bn=self.with_bn)
        chip.write_block(weight, at=r)
        stats = _block_stats(chip.model)
        return RefreshEvent(time_s=r, train_s=train_s, block_pulses=stats["pulses"], block_reads=stats["reads"],
                            block_cells=stats["cells"], block_failed_cells=stats["failed_cells"],
                            backbone_reads_devices=_backbone_devices(chip.model) * self.cfg.block.n_reads
                            if retrain else 0)

    def run_chip(self, index: int) -> RefreshCell:
        chip = Chip(self.analog, self.ctx.preset, self.cfg.seed, index)  # the same chips as tsb-aihw run
        digest = chip.program()
        if self.with_bn:  # as a study's tsb cell: BN through the chip, then the block
            recalibrate_chip_bn(chip, self.ctx.models)
        w0, train0 = train_block_for_chip(self.ctx.models, chip, self.cfg.block.read_time,
                                          with_bn=self.with_bn)
        chip.write_block(w0)
        chip.calibrate_adc(self.ctx.models.train_loader("adc", index))
        chip_cost, block_write0 = programming_cost(self.analog, self.ctx.preset).to_dict(), _block_stats(self.analog)
        tsb, _ = self._arm(chip, [])
        refreshed, refresh_events = self._arm(chip, [(r, None) for r in self.refresh])
        rewritten, rewrite_events = None, None
        if self.cfg.controls:
            chip.write_block(w0)  # back to the original block write
            rewritten, rewrite_events = self._arm(chip, [(r, w0) for r in self.refresh])
        reference = None
        if self.reference is not None:
            ref = Chip(self.reference, self.ctx.preset, self.cfg.seed, index)
            ref.program()
            reference = [chip_accuracy(ref, self.ctx.data.test, t, device=self.cfg.device, fast=self.cfg.fast_eval,
                                       product=self.cfg.fast_eval_product)
                         for t in self.times]
        return RefreshCell(chip_cost=chip_cost, block_write0=block_write0, block_train0_s=train0, chip=digest,
                           tsb=tsb, tsb_refresh=refreshed, refresh_events=refresh_events, tsb_rewrite=rewritten,
                           rewrite_events=rewrite_events, reference=reference)


@dataclass(frozen=True, kw_only=True)
class RefreshChipTask(ChipTask):
    """One chip of the refresh study: the output directory whose checkpoints workers load."""

    out: str

    @property
    def where(self) -> str:
        return self.out

    def build_context(self) -> RefreshRunner:
        cfg = config_from(RefreshConfig, self.config, "refresh task")
        return RefreshRunner(StudyContext(cfg, Path(self.out), progress=False, can_train=False), cfg)

    def compute(self, ctx: RefreshRunner) -> RefreshCell:
        start = time.perf_counter()
        row = ctx.run_chip(self.chip)
        return dataclasses.replace(row, seconds=time.perf_counter() - start)


def run_refresh_study(cfg: RefreshConfig, out: str | Path, progress: bool = True, executor: Executor | None = None,
                      move_aside: bool = False) -> RefreshResult:
    """Run (or resume) the refresh study on ``cfg.chips`` chips; writes results.json, CSVs and the plot.

    Uses the preset, evaluation ``times`` (chip time after programming), ``refresh_times``, the model/data/
    backbone/block settings; ``controls`` adds the re-write-only arm, ``reference`` the one-shot baseline (b)."""
    t0 = time.perf_counter()
    cfg.validate()
    store = ResultStore(out, "refresh", study_identity(cfg, "refresh"), move_aside=move_aside)
    ctx = StudyContext(cfg, store.out, progress=progress)
    ctx.models.blocks.check_block()
    runner = RefreshRunner(ctx, cfg)  # trains (or loads) the early, TSB and (b) models here, in the parent
    config = cfg.to_dict()
    out_dir = str(store.out.resolve())
    # BN re-estimation first (block.recalibrate_bn) adds to the key; without it the keys stay as before it existed
    # a product other than fp32 (fast_eval_product resolved on this machine) adds to it too
    product = ctx.chip_eval()["product"]
    key = json_fingerprint([ctx.preset.identity, CELL_VERSION, *(["bn"] if runner.with_bn else []),
                            *([product] if product != "fp32" else [])])
    tasks = [RefreshChipTask(key=f"refresh#{c}@{key}",
                             config=config, out=out_dir, chip=c) for c in range(cfg.chips)]
    with sharing(RefreshChipTask.context_key(out_dir, config), runner):
        run_cells(run_chip_task, tasks, store, executor, desc=f"refresh study ({ctx.preset.name})",
                  progress=progress)
    rows = [load_record(RefreshCell, store.get(t.key), str(store.path)) for t in tasks]
    results = assemble_refresh(ctx, cfg, rows, runner.times, runner.refresh)
    results = dataclasses.replace(results, wall_time_s=time.perf_counter() - t0)
    return write_refresh_outputs(results, store.out)


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values))


def assemble_refresh(ctx: StudyContext, cfg: RefreshConfig, rows: list[RefreshCell], times: list[float],
                     refresh: list[float]) -> RefreshResult:
    """Per-arm summaries, paired per-chip differences against ``tsb`` and the refresh cost."""
    from tsb_aihw.evaluation import evaluate_accuracy

    labels = [format_time(t) for t in times]
    tsb_rows = [r.tsb for r in rows]
    arm_out = {}
    for arm, label in ARMS.items():
        arm_rows = [r.arm(arm) for r in rows]
        per_chip = [a for a in arm_rows if a is not None]
        if len(per_chip) != len(rows):
            continue  # an arm this config does not run
        arm_out[arm] = RefreshArm(
            label=label, per_chip=per_chip, accuracy=summaries_by_time(per_chip, labels),
            minus_tsb=None if arm == "tsb" else summaries_by_time(paired_differences(per_chip, tsb_rows), labels))

    def event_mean(i: int, key: str) -> float:
        return _mean([getattr(row.refresh_events[i], key) for row in rows])

    per_refresh = [RefreshWrite(time=format_time(r), block_pulses=event_mean(i, "block_pulses"),
                                block_reads=event_mean(i, "block_reads"), train_s=event_mean(i, "train_s"),
                                backbone_device_reads=event_mean(i, "backbone_reads_devices"))
                   for i, r in enumerate(refresh)]
    chip_pulses = _mean([r.chip_cost["pulses"] for r in rows])
    total = sum(p.block_pulses for p in per_refresh)
    cost = RefreshCost(chip_pulses=chip_pulses, block_write0_pulses=_mean([r.block_write0["pulses"] for r in rows]),
                       block_weights=rows[0].block_write0["cells"],
                       block_train0_s=_mean([r.block_train0_s for r in rows]), per_refresh=per_refresh,
                       refresh_total_pulses=total, refresh_pulses_vs_chip=total / chip_pulses)
    tsb = get_tsb(ctx.models.tsb_model())
    return RefreshResult(
        config=cfg.to_dict(), seed=cfg.seed, provenance=provenance(ctx.chip_eval()),
        preset=PresetRecord.of(ctx.preset),
        model=cfg.model.name, dataset=DatasetRecord(name=cfg.data.name, split_note=ctx.data.test_info.split_note,
                                                    eval_size=len(ctx.data.test.dataset)),
        chips=len(rows), times=times, time_labels=labels,
        refresh_times=refresh, refresh_labels=[format_time(r) for r in refresh],
        block={"k": tsb.k, "weights": tsb.conv.weight.numel(), "epochs": cfg.block.epochs,
               "n_reads": cfg.block.n_reads},
        reference_accuracy=evaluate_accuracy(ctx.models.backbone("full"), ctx.data.test, device=cfg.device),
        reference_definition="clean digital test accuracy of (b), the fully trained noise-injection backbone",
        drift_semantics="backbone tiles drift to chip time t; a block re-written at r drifts to t - r (own "
                        "clock, fresh drift coefficients); all arms share the backbone's drift/read draws",
        arms=arm_out, cost=cost, chip_digests=[r.chip for r in rows], chip_seconds=[r.seconds for r in rows],
    )


def write_refresh_outputs(results: RefreshResult, out: Path) -> RefreshResult:
    """results.json, refresh_chips.csv (one row per arm, chip, time), refresh_summary.csv and the plot; returns
    the results with their plots named."""
    labels = results.time_labels
    chip_rows, summary_rows = [], []
    for arm, a in results.arms.items():
        for chip, accs in enumerate(a.per_chip):
            chip_rows += [{"arm": arm, "chip": chip, "time_s": t, "time": lab, "accuracy": acc}
                          for t, lab, acc in zip(results.times, labels, accs)]
        for t, lab in zip(results.times, labels):
            s = a.accuracy[lab].to_dict()
            d = a.minus_tsb[lab].to_dict() if a.minus_tsb else {}
            summary_rows.append({"arm": arm, "label": a.label, "time_s": t, "time": lab, "chips": s["n"],
                                 "acc_mean": s["mean"], "acc_std": s["std"], "acc_ci95_low": s["ci95_low"],
                                 "acc_ci95_high": s["ci95_high"], "minus_tsb_mean": d.get("mean"),
                                 "minus_tsb_ci95_low": d.get("ci95_low"), "minus_tsb_ci95_high": d.get("ci95_high")})
    atomic_write_csv(out / "refresh_chips.csv", chip_rows)
    atomic_write_csv(out / "refresh_summary.csv", summary_rows)
    arms = [results.arms[k] for k in ARMS if k in results.arms]  # fixed order: fixed colours
    series = {a.label: time_series(a.per_chip, results.times) for a in arms}
    events = {f"refresh {p.time} ({p.block_pulses:,.0f} pulses)": r
              for p, r in zip(results.cost.per_refresh, results.refresh_times)}
    plots = plot_accuracy_vs_time(series, out / "refresh_accuracy_vs_time", reference=results.reference_accuracy,
                                  title=f"{results.model} on {results.preset.name}: TSB refresh "
                                        f"({results.chips} chips)", events=events)
    results = dataclasses.replace(results, plots=[p.name for p in plots])
    atomic_write_json(out / "results.json", results.to_dict())
    return results
