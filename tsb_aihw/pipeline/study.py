"""One TSB study: train the backbones, then deploy every method on the same N simulated chips.

Data flow: config -> :class:`StudyContext` (data, trained models) -> one :class:`CellTask` per (method, chip)
-> :func:`tsb_aihw.parallel.run_cells` (any executor; each finished cell saved in the result store) ->
:func:`assemble_study` (summaries, gaps against one reference, claims) -> results.json, CSVs, plots.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

from tsb_aihw.analog import weight_report
from tsb_aihw.evaluation import evaluate_accuracy
from tsb_aihw.evaluation.stats import summaries_by_time
from tsb_aihw.models import get_tsb
from tsb_aihw.parallel.cells import run_cells, run_chip_task, sharing
from tsb_aihw.parallel.executor import Executor
from tsb_aihw.pipeline.adopt import check_sources
from tsb_aihw.pipeline.claims import compute_claims
from tsb_aihw.pipeline.config import StudyConfig, keyed_tree
from tsb_aihw.pipeline.definitions import EpochBudget, speedup_units
from tsb_aihw.pipeline.deploy import CellResult
from tsb_aihw.pipeline.inputs import data_inputs, with_inputs
from tsb_aihw.pipeline.methods import GRID_METHOD, MethodSpec, method_spec, selective_specs
from tsb_aihw.pipeline.tasks import StudyContext
from tsb_aihw.pipeline.trained import backbone_args
from tsb_aihw.records import DatasetRecord, MethodResult, PresetRecord, StudyResult, TsbRecord
from tsb_aihw.records.study import InferenceCostSummary
from tsb_aihw.utils.io import JsonObject, atomic_write_json
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.store import ResultStore

#: config keys that only select cells: a store accepts more chips without a new identity
SELECTING_KEYS = ("chips",)


def study_identity(cfg: StudyConfig, kind: str = "study") -> JsonObject:
    """What an output directory of this study is bound to: the config's non-default values (a new field with
    a neutral default keeps it) minus the chip count, and the content of a user's image folder
    (:mod:`tsb_aihw.pipeline.inputs`)."""
    c = keyed_tree(cfg)
    for k in SELECTING_KEYS:
        c.pop(k, None)
    return with_inputs({"kind": kind, "config": c}, data_inputs(cfg.data.name))  # an image folder: by content


def method_specs(ctx: StudyContext) -> list[MethodSpec]:
    """Base methods in the configured order, then the selective write-verify grid around TSB's fraction."""
    cfg = ctx.cfg
    specs = [method_spec(m, cfg.block) for m in cfg.methods if m != GRID_METHOD]  # an unknown name is an error
    if GRID_METHOD in cfg.methods:
        tsb_fraction = weight_report(ctx.models.tsb_model()).verified_fraction
        fractions = sorted({round(tsb_fraction * x, 8) for x in cfg.selective.fraction_multipliers}
                           | {float(f) for f in cfg.selective.extra_fractions})
        specs += selective_specs(cfg.selective.methods, [f for f in fractions if 0 < f < 1])
    return specs


def run_study(cfg: StudyConfig, out: str | Path, progress: bool = True, executor: Executor | None = None,
              threads: int | None = None, move_aside: bool = False,
              models_from: Sequence[str | Path] = ()) -> StudyResult:
    """Run (or resume) one study and write ``results.json``, CSVs and plots into ``out``.

    ``executor`` (``tsb_aihw.parallel``; default: the one set by ``use_executor``, else in-process) runs the
    (method, chip) cells; ``threads`` sets torch's thread count inside each cell; ``models_from``: finished
    runs or exported folders whose trained models (same key) are taken instead of re-trained."""
    from tsb_aihw.pipeline.report import write_plots, write_tables

    t0 = time.perf_counter()
    cfg.validate()
    check_sources(models_from)
    store = ResultStore(out, "study", study_identity(cfg), move_aside=move_aside)
    results = deploy_study(cfg, store, progress, executor, threads, models_from=models_from)
    results = dataclasses.replace(results, plots=[str(p.name) for p in write_plots(results, store.out)])
    write_tables(results, store.out)
    results = dataclasses.replace(results, wall_time_s=time.perf_counter() - t0)
    atomic_write_json(store.out / "results.json", results.to_dict())
    return results


def deploy_study(cfg: StudyConfig, store: ResultStore, progress: bool = True, executor: Executor | None = None,
                 threads: int | None = None, desc: str | None = None,
                 models_from: Sequence[str | Path] = ()) -> StudyResult:
    """Train (or load, or take from ``models_from``) the study's models, run its (method, chip) cells into
    ``store``, assemble the results."""
    ctx = StudyContext(cfg, store.out, progress=progress, models_from=models_from)
    ctx.models.blocks.check_block()
    specs = method_specs(ctx)
    ctx.models.prepare(specs)
    tasks = [ctx.task(spec, chip, threads) for spec in specs for chip in range(cfg.chips)]
    with sharing(ctx.key, ctx):
        run_cells(run_chip_task, tasks, store, executor, desc=desc or f"{ctx.preset.name}: methods x chips",
                  progress=progress)
    cells = {spec.key: [CellResult.from_dict(store.get(t.key), str(store.path)) for t in tasks if t.spec == spec]
             for spec in specs}
    return assemble_study(ctx, specs, cells)


def mean_cost(rows: list[CellResult]) -> dict[str, int | float]:
    """The programming cost of a method's cells, averaged over its chips (studies and sweeps alike)."""
    return {k: sum(r.cost[k] for r in rows) / len(rows) for k in rows[0].cost}


def method_inference_cost(ctx: StudyContext, spec: MethodSpec) -> InferenceCostSummary:
    """Energy, latency and tile MVMs of one inference of the method's deployed model (TSB's sites included),
    with the model that priced each figure."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.cost import inference_cost

    verify: Any = "none" if spec.verify == "masks" else spec.verify  # verify does not change inference cost
    analog = to_analog(ctx.models.digital_model(spec), ctx.preset, verify=verify).eval()
    info = ctx.data.info
    cost = inference_cost(analog, ctx.preset, (info.in_channels, *info.image_size))
    return InferenceCostSummary(energy_j=cost.energy_j, latency_s=cost.latency_s, tile_mvms=cost.mvms,
                                priced_by=dict(cost.priced_by))


def assemble_study(ctx: StudyContext, specs: list[MethodSpec], cells: dict[str, list[CellResult]]) -> StudyResult:
    """Per-method summaries, gaps against ONE reference (the clean accuracy of (b)), claims and provenance."""
    cfg, models, labels = ctx.cfg, ctx.models, ctx.labels
    reference = evaluate_accuracy(models.backbone("full"), ctx.data.test, device=cfg.device)
    methods: dict[str, MethodResult] = {}
    for spec in specs:
        rows = cells[spec.key]
        per_chip = [r.acc for r in rows]
        block_time = sum(r.block_time_s for r in rows) / len(rows)
        per_chip_block = spec.block == "chip"
        methods[spec.key] = MethodResult(
            label=spec.label, backbone=spec.backbone, block=spec.block, verify=spec.verify,
            selection=list(spec.selection) if spec.selection else None, curve=spec.curve,
            verified_fraction=rows[0].verified_fraction, cost=mean_cost(rows),
            clean_accuracy=None if per_chip_block else
            evaluate_accuracy(models.digital_model(spec), ctx.data.test, device=cfg.device),
            train_time_s=models.train_time(spec, block_time),
            cell_time_s=sum(r.wall_s for r in rows) / len(rows),  # mean wall time of one chip's cell
            accuracy=summaries_by_time(per_chip, labels),
            gap=summaries_by_time([[reference - a for a in c] for c in per_chip], labels),
            per_chip=per_chip, chips=[r.chip for r in rows],
            inference_cost=method_inference_cost(ctx, spec),
            backbone_time_s=models.meta["backbone_early"].train_time_s if per_chip_block else None,
            block_time_s=block_time if per_chip_block else None,
        )
    base, tsb_method = methods.get("full_noise_injection"), methods.get("tsb")
    speedup = (speedup_units(base, tsb_method, budget=EpochBudget.of(cfg.to_dict()), training=models.meta,
                             train_images=len(ctx.data.train.dataset)) if base and tsb_method else None)
    tsb = models.tsb_model()
    block = get_tsb(tsb)
    return StudyResult(
        config=cfg.to_dict(), seed=cfg.seed, provenance=provenance(ctx.chip_eval()),
        preset=PresetRecord.of(ctx.preset),
        model=cfg.model.name, width=cfg.model.width, model_args=backbone_args(cfg, ctx.data.info),
        dataset=DatasetRecord(name=cfg.data.name, split_note=ctx.data.test_info.split_note,
                              eval_size=len(ctx.data.test.dataset)),
        times=ctx.times, time_labels=labels, reference_accuracy=reference,
        reference_definition="clean digital test accuracy of (b), the noise-injection baseline trained to "
                             "full convergence; every gap = reference - chip accuracy",
        tsb=TsbRecord(k=block.k, sites=len(getattr(tsb, "tsb_sites", []) or []), weights=block.conv.weight.numel(),
                      verified_fraction=weight_report(tsb).verified_fraction),
        training=dict(models.meta), methods=methods, claims=compute_claims(methods, labels, speedup=speedup),
    )
