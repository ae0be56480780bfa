"""A finished sweep: per-point summaries over chips, the files it writes and its plots."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from tsb_aihw.analog import weight_report
from tsb_aihw.devices import DevicePreset
from tsb_aihw.errors import TSBError
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.evaluation.stats import paired_differences, summaries_by_time
from tsb_aihw.models import get_tsb
from tsb_aihw.pipeline.deploy import CellResult
from tsb_aihw.pipeline.study import mean_cost
from tsb_aihw.pipeline.tasks import StudyContext
from tsb_aihw.records import DatasetRecord, PresetRecord, SweepPoint, SweepRecord, TrainingMeta, TsbRecord, read_record
from tsb_aihw.records.sweep import BlockBudget
from tsb_aihw.sweeps.axes import SweepAxis
from tsb_aihw.utils.io import CsvRow, JsonObject, atomic_write_csv, atomic_write_json, read_json
from tsb_aihw.utils.provenance import provenance

if TYPE_CHECKING:
    from tsb_aihw.sweeps.runner import Point

SCHEMA = "tsb-aihw-sweep/1"


def assemble_sweep(ctx: StudyContext, axis: SweepAxis, points: list[Point], cells: Mapping[str, list[CellResult]],
                   presets: Mapping[str, DevicePreset], *, note: str, executor: JsonObject,
                   resumed: int) -> SweepResult:
    """Summaries (mean, std, Student-t 95% CI over chips) of every point at every time.

    ``cells[point id]`` holds the point's cell per chip and ``presets[point id]`` the device it ran on."""
    cfg, labels, models = ctx.cfg, ctx.labels, ctx.models
    rows_out = []
    for p in points:
        rows = cells[p.id]
        per_chip = [r.acc for r in rows]
        preset = presets[p.id]
        rows_out.append(SweepPoint(
            id=p.id, axis_value=p.axis_value, role=p.role, method=p.spec.key, label=p.spec.label,
            curve=p.spec.curve, selection=list(p.spec.selection) if p.spec.selection else None,
            preset=preset.name, preset_source=p.deploy.preset, overrides=p.deploy.overrides,
            preset_identity=preset.identity, verified_fraction=rows[0].verified_fraction,
            cost=mean_cost(rows),
            accuracy=summaries_by_time(per_chip, labels), per_chip=per_chip, chips=[r.chip for r in rows],
            # wall time: a timing key (tsb_aihw.utils.timing), ignored by comparisons
            block_time_s=sum(r.block_time_s for r in rows) / len(rows) if p.spec.block == "chip" else None,
        ))
    budget = None
    if axis.kind == "block":
        own = models.blocks.block_value(str(axis.block_field))
        budget, rows_out = block_budget_summary(axis, own, rows_out, labels, models.meta["backbone_full"])
    tsb = get_tsb(models.tsb_model())
    record = SweepRecord(
        schema=SCHEMA, kind=axis.kind, axis=axis.record(), config=cfg.to_dict(), seed=cfg.seed, chips=cfg.chips,
        provenance=provenance(ctx.chip_eval()), training_note=note,
        base_preset=PresetRecord.of(ctx.preset, identity=False),
        model=cfg.model.name, width=cfg.model.width,
        dataset=DatasetRecord(name=cfg.data.name, split_note=ctx.data.test_info.split_note,
                              eval_size=len(ctx.data.test.dataset)),
        times=ctx.times, time_labels=labels,
        reference_accuracy=evaluate_accuracy(models.backbone("full"), ctx.data.test, device=cfg.device),
        reference_definition="clean digital test accuracy of the fully trained noise-injection backbone (b)",
        tsb=TsbRecord(k=tsb.k, weights=tsb.conv.weight.numel(),
                      verified_fraction=weight_report(models.tsb_model()).verified_fraction),
        points=rows_out,
        training={k: v.time_only() for k, v in models.meta.items()},
        block_budget=budget,
    )
    return SweepResult(record, ctx.out, run_info={"executor": executor, "cells_reused": resumed})


#: block fields where a smaller value is cheaper (the "cheapest within the CI" question has an answer; k: fewer
#: verified weights)
CHEAPER_WHEN_SMALLER = ("epochs", "calibration_images", "n_reads", "k")


def block_budget_summary(axis: SweepAxis, own: Any, points: list[SweepPoint], labels: list[str],
                         full_meta: TrainingMeta) -> tuple[BlockBudget, list[SweepPoint]]:
    """A block sweep's answer: per chip-block point, the block's time in backbone epochs and the per-chip
    paired accuracy difference against the config's own value ``own`` (the reference); per method, the
    cheapest value whose paired 95% CI reaches 0 (not measurably worse than the config's) at the first time.

    Returns the summary and the points, the curve points with ``block_time_over_backbone_epoch`` and
    ``paired_vs_config`` filled in."""
    name = axis.block_field
    if not full_meta.epochs:
        raise TSBError("a block sweep needs (b)'s epochs in its training meta; its checkpoint lacks them")
    epoch_s = full_meta.train_time_s / full_meta.epochs
    ref = {p.method: p for p in points if p.role == "curve" and p.axis_value == own}
    cheapest: dict[str, int | float] = {}
    out = []
    for p in points:
        if p.role == "curve":
            assert p.block_time_s is not None  # a block sweep's curve is a per-chip block method
            paired = summaries_by_time(paired_differences(p.per_chip, ref[p.method].per_chip), labels)
            p = dataclasses.replace(p, block_time_over_backbone_epoch=p.block_time_s / epoch_s,
                                    paired_vs_config=paired)
            ok = p.axis_value == own or paired[labels[0]].ci95_high >= 0.0
            value = p.axis_value
            if name in CHEAPER_WHEN_SMALLER and ok and not isinstance(value, str) \
                    and value < cheapest.get(p.method, float("inf")):
                cheapest[p.method] = value
        out.append(p)
    return BlockBudget(
        key=str(axis.key), config_value=own, backbone_epoch_s=epoch_s,
        backbone_epoch_definition="training time of (b) / its epochs (full_epochs)",
        criterion=f"paired per-chip accuracy difference at t={labels[0]} against the config's {axis.key} = "
                  f"{own}: its 95% CI reaches 0 (not measurably worse)",
        cheapest_within_ci=cheapest if name in CHEAPER_WHEN_SMALLER else None), out


class SweepResult:
    """A sweep's :class:`SweepRecord` (exactly what ``sweep.json`` holds) and the directory it lives in.

    ``sweep.json`` depends only on config, seed, axis, package versions and torch threads (plus the wall-clock
    keys of ``tsb_aihw.utils.timing``), so an executor run, a resumed run and a clean run write the same file.
    Where and how this run happened (executor, cells reused from an earlier run) goes to ``sweep_run.json``.
    """

    def __init__(self, record: SweepRecord, out: str | Path, run_info: JsonObject | None = None):
        self.record = record
        self.out = Path(out)
        self.run_info = run_info or {}

    @property
    def points(self) -> list[SweepPoint]:
        return self.record.points

    @property
    def kind(self) -> str:
        return self.record.kind

    def to_dict(self) -> JsonObject:
        return self.record.to_dict()

    def accuracies(self) -> dict[str, list[list[float]]]:
        """``{point id: per-chip accuracies [chip][time]}``: the raw numbers, for comparisons."""
        return {p.id: p.per_chip for p in self.points}

    # -- files ------------------------------------------------------------------------------------------
    def rows(self) -> Sequence[CsvRow]:
        """One row per (point, time): the summary over chips."""
        out = []
        for p in self.points:
            for t in self.record.time_labels:  # time order (a reloaded sweep.json has its keys sorted)
                a = p.accuracy[t].to_dict()
                paired = p.paired_vs_config[t].mean if p.paired_vs_config else None
                out.append({"kind": self.kind, "axis_value": p.axis_value, "preset": p.preset,
                            "method": p.method, "label": p.label, "role": p.role, "time": t,
                            "chips": a["n"], "acc_mean": a["mean"], "acc_std": a["std"],
                            "acc_ci95_low": a["ci95_low"], "acc_ci95_high": a["ci95_high"],
                            "verified_fraction": p.verified_fraction, "pulses": p.cost.get("pulses"),
                            "program_energy_j": p.cost.get("energy_j"), "block_time_s": p.block_time_s,
                            "block_time_over_backbone_epoch": p.block_time_over_backbone_epoch,
                            "paired_vs_config_mean": paired})
        return out

    def chip_rows(self) -> Sequence[CsvRow]:
        return [{"kind": self.kind, "axis_value": p.axis_value, "preset": p.preset, "method": p.method,
                 "chip": chip, "time": t, "accuracy": acc}
                for p in self.points for chip, accs in enumerate(p.per_chip)
                for t, acc in zip(self.record.time_labels, accs)]

    def save(self) -> list[Path]:
        """``sweep.json`` (everything), ``sweep.csv`` (summaries), ``sweep_chips.csv`` (raw samples),
        ``sweep_run.json`` (executor, reused cells)."""
        files = [atomic_write_json(self.out / "sweep.json", self.to_dict()),
                 atomic_write_csv(self.out / "sweep.csv", self.rows()),
                 atomic_write_csv(self.out / "sweep_chips.csv", self.chip_rows())]
        if self.run_info:
            files.append(atomic_write_json(self.out / "sweep_run.json", self.run_info))
        return files

    # -- plots ------------------------------------------------------------------------------------------
    def plot(self, out: str | Path | None = None) -> list[Path]:
        """The kind's plot(s), PNG + PDF (one per evaluation time, except the accuracy-vs-time plot)."""
        from tsb_aihw.sweeps.plotting import plot_sweep

        files = plot_sweep(self.record, Path(out) if out is not None else self.out)
        self.record = dataclasses.replace(self.record, plots=[p.name for p in files])
        return files


def load_sweep(path: str | Path) -> SweepResult:
    """A saved sweep (``sweep.json`` or its directory) as a :class:`SweepResult`."""
    p = Path(path)
    if p.is_dir():
        p = p / "sweep.json"
    run = p.parent / "sweep_run.json"
    return SweepResult(read_record(SweepRecord, p), p.parent, read_json(run) if run.exists() else None)
