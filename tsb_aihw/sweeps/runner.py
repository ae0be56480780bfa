"""``run_sweep``: train once on the base preset, then run every (axis value, method, chip) cell on an executor.

Cells go through the one cell runner (:func:`tsb_aihw.parallel.run_cells`) into the output directory's result
store. A cell's key holds a fingerprint of everything it depends on (training config, seed, times, the device
preset's content, method, chip), so a re-run skips finished cells, and adding axis values or chips later
reuses the ones already computed; another base config or axis kind in the same directory is refused.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tsb_aihw.devices import DevicePreset
from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.times import parse_times
from tsb_aihw.parallel.cells import run_cells, run_chip_task, sharing
from tsb_aihw.pipeline.adopt import check_sources
from tsb_aihw.pipeline.config import StudyConfig
from tsb_aihw.pipeline.deploy import CellResult, DeploySpec
from tsb_aihw.pipeline.methods import ALL_METHODS, BASE_METHODS, MethodSpec, method_spec, selective_specs
from tsb_aihw.pipeline.study import method_specs, study_identity
from tsb_aihw.pipeline.tasks import StudyContext
from tsb_aihw.sweeps.axes import POINT_METHODS, SweepAxis, value_label
from tsb_aihw.sweeps.result import SweepResult, assemble_sweep
from tsb_aihw.utils.store import ResultStore

TRAINING_NOTE = ("backbones and fixed blocks are trained once, on the base config's preset ({preset}), and the "
                 "same digital models are deployed at every axis value; per-chip blocks (tsb) are trained per "
                 "cell on that cell's chip")


@dataclass(frozen=True)
class Point:
    """One (axis value, method) point of a sweep: chips of it are the cells."""

    axis_value: Any
    spec: MethodSpec
    deploy: DeploySpec
    role: str = "curve"  # "curve" (varies with the axis) or "point" (fixed method drawn at its own fraction)

    @property
    def id(self) -> str:
        return f"{value_label(self.axis_value)}|{self.spec.key}"


def deploy_for(cfg: StudyConfig, axis: SweepAxis, value: Any) -> DeploySpec:
    """The device preset (name + dotted overrides) that cells at ``value`` are programmed on, and for a block
    sweep the per-chip block's budget there (``value`` None: the config's)."""
    base = {str(k).replace("__", "."): v for k, v in cfg.preset_overrides.items()}
    if axis.kind == "block":
        return DeploySpec(cfg.preset, base, block={} if value is None else {str(axis.block_field): value})
    if axis.kind == "presets":
        return DeploySpec(str(value), base if str(value) == str(cfg.preset) else {})
    return DeploySpec(cfg.preset, base | {key: value for key in axis.override_keys()})


def check_axis(cfg: StudyConfig, axis: SweepAxis) -> dict[Any, DevicePreset]:
    """Load the device preset of every axis value now (fail before training) and refuse sweeps that cannot
    change anything. Returns {value: DevicePreset}."""
    base = deploy_for(cfg, SweepAxis("verified_fraction", [0.0]), None).load()
    if axis.kind == "sigma" and base.noise.model != "nvcim-gaussian":
        raise ConfigError(f"a sigma sweep sets noise.sigma, which only the nvcim-gaussian device model has; preset "
                          f"{cfg.preset!r} is {base.noise.model!r}. Use preset: nvcim-gaussian, or sweep another "
                          f"key with `tsb-aihw sweep param --key noise.prog_noise_scale`")
    if axis.kind == "adc_bits" and base.periphery.is_perfect:
        raise ConfigError(f"preset {cfg.preset!r} has periphery.is_perfect: true (exact MVM), so ADC/DAC bits change "
                          "nothing; add preset_overrides: {periphery__is_perfect: false} to the config (or use "
                          "pcm/rram)")
    if axis.kind == "block":  # one device; every value must be a valid budget
        if axis.block_field == "calibration_images" and cfg.block.calibration_images is None:
            raise ConfigError(f"{axis.key} is null in the config (blocks train on the whole split, uncached), so a "
                              f"sweep of it has no reference point; set {axis.key} to the reference size in the "
                              "config")
        for v in axis.values:
            check_block_value(cfg, axis, v)
        return {None: base}
    presets = {}
    for v in (axis.values if axis.kind != "verified_fraction" else [None]):
        try:
            presets[v] = deploy_for(cfg, axis, v).load()
            presets[v].check_times(parse_times(cfg.times))
        except ConfigError as exc:
            raise ConfigError(f"sweep {axis.kind} value {v!r}: {exc}") from None
    folders = [p.folder_name for p in presets.values()]
    if axis.kind == "presets" and len(set(folders)) != len(folders):
        raise ConfigError(f"sweep presets {axis.values}: two values are the same device; give each once")
    return presets


def check_block_value(cfg: StudyConfig, axis: SweepAxis, value: Any) -> None:
    """A block sweep's value must be valid for its budget field (the config schema's rules)."""
    try:
        deploy_for(cfg, axis, value).block_config(cfg.block)
    except ConfigError as exc:
        raise ConfigError(f"sweep block value {value!r}: {exc}") from None


def block_points(ctx: StudyContext, axis: SweepAxis) -> list[Point]:
    """A block sweep: every chip-block method at every value and at the config's own value (the paired
    reference); the other methods once, as points at the config's value (they do not train a per-chip block)."""
    cfg, name = ctx.cfg, str(axis.block_field)
    specs = method_specs(ctx)
    chip_specs = [s for s in specs if s.block == "chip"]
    if not chip_specs:
        raise ConfigError(f"a block sweep varies the per-chip block, but methods {cfg.methods} train none; add tsb "
                          "(or tsb_full / tsb_bn) to methods")
    own = ctx.models.blocks.block_value(name)
    values = sorted(set(axis.values) | {own})
    for v in values:  # a k that fits no site, more images than the training split: fail now, before training
        try:
            ctx.models.blocks.check_block(deploy_for(cfg, axis, v).block_config(cfg.block))
        except ConfigError as exc:
            raise ConfigError(f"sweep block value {v!r}: {exc}") from None
    pts = [Point(v, s, deploy_for(cfg, axis, v)) for v in values for s in chip_specs]
    return pts + [Point(own, s, deploy_for(cfg, axis, None), role="point") for s in specs if s.block != "chip"]


def build_points(ctx: StudyContext, axis: SweepAxis, methods: Sequence[str]) -> list[Point]:
    """Every (axis value, method) point of the sweep, in plotting order."""
    cfg = ctx.cfg
    if axis.kind == "verified_fraction":
        deploy = deploy_for(cfg, axis, None)
        rules = list(axis.rules or cfg.selective.methods)
        wanted = axis.points if axis.points is not None else [m for m in POINT_METHODS if m in methods] or ["tsb"]
        bad = [m for m in wanted if m not in BASE_METHODS]
        if bad:
            raise ConfigError(f"points {bad} are not methods; choose from {', '.join(BASE_METHODS)}")
        from tsb_aihw.analog import weight_report

        tsb_fraction = weight_report(ctx.models.tsb_model()).verified_fraction
        fractions = set(axis.values)
        if axis.add_tsb_fraction and not any(abs(f - tsb_fraction) <= 0.02 * tsb_fraction for f in fractions):
            fractions.add(round(tsb_fraction, 10))  # the curves at TSB's budget (unless a value is within 2%)
        pts: list[Point] = []
        for f in sorted(fractions):
            if f == 0.0:
                pts.append(Point(0.0, BASE_METHODS["full_noise_injection"], deploy))
            elif f == 1.0:
                pts.append(Point(1.0, BASE_METHODS["full_verify"], deploy))
            else:
                pts += [Point(f, s, deploy) for s in selective_specs(rules, [f])]
        for m in wanted:
            spec = method_spec(m, cfg.block)
            frac = weight_report(ctx.models.digital_model(spec), verify=spec.verify)
            pts.append(Point(round(frac.verified_fraction, 10), spec, deploy, role="point"))
        return pts
    if axis.kind == "block":
        return block_points(ctx, axis)
    specs = method_specs(ctx)
    return [Point(v, s, deploy_for(cfg, axis, v)) for v in axis.values for s in specs]


def run_sweep(cfg: StudyConfig, axis: SweepAxis | str, values: Sequence[Any] | None = None,
              out: str | Path | None = None, *, methods: Sequence[str] | None = None, chips: int | None = None,
              times: Sequence[Any] | None = None, executor: Any = None, workers: int | None = None,
              scheduler: str | None = None, threads: int | None = 1, progress: bool = True,
              plot: bool = True, move_aside: bool = False, models_from: Sequence[str | Path] = (),
              **axis_options: Any) -> SweepResult:
    """Run (or resume) a sweep and write ``sweep.json``, ``sweep.csv``, ``sweep_chips.csv`` and plots to ``out``.

    Args:
        cfg: the base study config (preset, model, data, training budgets, seed, chips, times, methods).
        axis: a :class:`SweepAxis`, or a kind (``verified_fraction``, ``sigma``, ``adc_bits``, ``param``,
            ``presets``) with ``values`` and ``axis_options`` (``key``, ``io``, ``rules``, ``points``,
            ``add_tsb_fraction``).
        out: output directory (checkpoints, finished cells and results; readable by every worker).
        methods / chips / times: override the config's (methods of the param/preset sweeps).
        executor: a ``tsb_aihw.parallel`` executor; else ``scheduler`` (Dask, tcp://...) or ``workers`` (> 1: a
            local process pool), else in-process.
        threads: torch threads inside every cell (1 by default on every executor, so results are identical
            across executors; None leaves the thread count alone).
        move_aside: rename an ``out`` that holds another sweep to ``out.moved-<time>`` instead of refusing.
        models_from: finished runs or exported folders whose trained models (same key) are taken, not re-trained.
    """
    from tsb_aihw.parallel import make_executor

    if out is None:
        raise ConfigError("run_sweep needs an output directory (out=...)")
    t0 = time.perf_counter()
    if not isinstance(axis, SweepAxis):
        axis = SweepAxis(axis, list(values) if values is not None else [], **axis_options)
    elif values is not None or axis_options:
        raise ConfigError("pass the values and options inside the SweepAxis, or a kind name with values=...")
    cfg = copy.deepcopy(cfg)
    if chips is not None:
        cfg.chips = chips
    if times is not None:
        cfg.times = list(times)
    if methods is not None:
        bad = [m for m in methods if m not in ALL_METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; valid: {', '.join(ALL_METHODS)}")
        cfg.methods = list(methods)
    cfg.validate()
    check_sources(models_from)
    check_axis(cfg, axis)  # every value loads and can change something: checked before training

    own = executor is None
    ex = executor if executor is not None else make_executor(workers, scheduler, threads)  # a bad --scheduler fails
    try:                                                                                   # here, before training
        identity = study_identity(cfg, "sweep") | {"axis": {"kind": axis.kind, "key": axis.key, "io": axis.io}}
        store = ResultStore(out, "sweep", identity, move_aside=move_aside)
        ctx = StudyContext(cfg, store.out, progress=progress, models_from=models_from)
        ctx.models.blocks.check_block()
        points = build_points(ctx, axis, cfg.methods)
        ctx.models.prepare([p.spec for p in points])
    except BaseException:
        if own:
            ex.close()
        raise
    threads = threads if threads is not None else ex.threads
    tasks = {(p.id, chip): ctx.task(p.spec, chip, threads, deploy=p.deploy)
             for p in points for chip in range(cfg.chips)}
    try:
        with sharing(ctx.key, ctx):
            resumed = run_cells(run_chip_task, list(dict.fromkeys(tasks.values())), store, ex,
                                desc=f"sweep {axis.kind}: cells", progress=progress)
        where = ex.describe()
    finally:
        if own:
            ex.close()
    cells = {p.id: [CellResult.from_dict(store.get(tasks[p.id, chip].key), str(store.path))
                    for chip in range(cfg.chips)] for p in points}
    presets = {p.id: ctx.deploy_preset(p.deploy) for p in points}
    result = assemble_sweep(ctx, axis, points, cells, presets, note=TRAINING_NOTE.format(preset=cfg.preset),
                            executor=where, resumed=resumed)
    result.record = dataclasses.replace(result.record, wall_time_s=time.perf_counter() - t0)
    result.save()
    if plot:
        result.plot()
        result.save()
    return result
