"""``run_sweep``: train once on the base preset, then run every (axis value, method, chip) cell on an executor.

Cells are saved one by one into ``sweep_cells.json`` (atomic rewrite) as they finish. A cell's id holds a
fingerprint of everything it depends on (training config, seed, times, device preset, method, chip), so a
re-run skips finished cells, and adding axis values or chips later reuses the ones already computed.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.config import METHODS, StudyConfig
from tsb_aihw.pipeline.methods import BASE_METHODS, MethodSpec, selective_specs
from tsb_aihw.pipeline.study import (
    CELL_VERSION,
    CellStore,
    Study,
    method_specs,
    register_study,
    run_cell_task,
    unregister_study,
)
from tsb_aihw.sweeps.axes import POINT_METHODS, SweepAxis, value_label
from tsb_aihw.sweeps.result import SweepResult, assemble_sweep
from tsb_aihw.utils.io import json_fingerprint

TRAINING_NOTE = ("backbones and fixed blocks are trained once, on the base config's preset ({preset}), and the "
                 "same digital models are deployed at every axis value; per-chip blocks (tsb) are trained per "
                 "cell on that cell's chip")


@dataclass(frozen=True)
class Point:
    """One (axis value, method) point of a sweep: chips of it are the cells."""

    axis_value: Any
    spec: MethodSpec
    deploy: dict[str, Any]  # {"preset": name or path, "overrides": {dotted key: value}}
    role: str = "curve"  # "curve" (varies with the axis) or "point" (fixed method drawn at its own fraction)

    @property
    def id(self) -> str:
        return f"{value_label(self.axis_value)}|{self.spec.key}"


def _dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    return {str(k).replace("__", "."): v for k, v in overrides.items()}


def _load_deploy(deploy: dict[str, Any]) -> Any:
    from tsb_aihw.devices import load_preset

    return load_preset(deploy["preset"], overrides=deploy["overrides"])


def deploy_for(cfg: StudyConfig, axis: SweepAxis, value: Any) -> dict[str, Any]:
    """The device preset (name + dotted overrides) that cells at ``value`` are programmed on."""
    base = _dotted(cfg.preset_overrides)
    if axis.kind == "presets":
        same = str(value) == str(cfg.preset)
        return {"preset": str(value), "overrides": base if same else {}}
    over = dict(base)
    for key in axis.override_keys():
        over[key] = value
    return {"preset": cfg.preset, "overrides": over}


def check_axis(cfg: StudyConfig, axis: SweepAxis) -> dict[Any, Any]:
    """Load the device preset of every axis value now (fail before training) and refuse sweeps that cannot
    change anything. Returns {value: DevicePreset}."""
    base = _load_deploy({"preset": cfg.preset, "overrides": _dotted(cfg.preset_overrides)})
    if axis.kind == "sigma" and base.noise.model != "nvcim-gaussian":
        raise ConfigError(f"a sigma sweep sets noise.sigma, which only the nvcim-gaussian device model has; preset "
                          f"{cfg.preset!r} is {base.noise.model!r}. Use preset: nvcim-gaussian, or sweep another "
                          f"key with `tsb-aihw sweep param --key noise.prog_noise_scale`")
    if axis.kind == "adc_bits" and base.periphery.is_perfect:
        raise ConfigError(f"preset {cfg.preset!r} has periphery.is_perfect: true (exact MVM), so ADC/DAC bits change "
                          "nothing; add preset_overrides: {periphery__is_perfect: false} to the config (or use "
                          "pcm/rram)")
    presets = {}
    for v in (axis.values if axis.kind != "verified_fraction" else [None]):
        try:
            presets[v] = _load_deploy(deploy_for(cfg, axis, v))
        except ConfigError as exc:
            raise ConfigError(f"sweep {axis.kind} value {v!r}: {exc}") from None
    from tsb_aihw.devices.presets import CMO_MIN_DRIFT_TIME
    from tsb_aihw.evaluation import parse_time

    short = [t for t in cfg.times if 0 < parse_time(t) < CMO_MIN_DRIFT_TIME]
    cmo = [p.name for p in presets.values() if p.noise.model == "reram-cmo"]
    if short and cmo:
        raise ConfigError(f"times {short} are below {CMO_MIN_DRIFT_TIME:g} s, where the reram-cmo model of preset(s) "
                          f"{cmo} is not fitted; use 0 or times >= 1s")
    return presets


def build_points(study: Study, axis: SweepAxis, methods: Sequence[str]) -> list[Point]:
    """Every (axis value, method) point of the sweep, in plotting order."""
    cfg = study.cfg
    if axis.kind == "verified_fraction":
        deploy = deploy_for(cfg, axis, None)
        rules = list(axis.rules or cfg.selective.methods)
        wanted = axis.points if axis.points is not None else [m for m in POINT_METHODS if m in methods] or ["tsb"]
        bad = [m for m in wanted if m not in BASE_METHODS]
        if bad:
            raise ConfigError(f"points {bad} are not methods; choose from {', '.join(BASE_METHODS)}")
        from tsb_aihw.analog import weight_report

        tsb_fraction = weight_report(study.tsb_model()).verified_fraction
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
            spec = BASE_METHODS[m]
            frac = weight_report(study.digital_model(spec), verify=spec.verify)
            pts.append(Point(round(frac.verified_fraction, 10), spec, deploy, role="point"))
        return pts
    specs = method_specs(study)
    return [Point(v, s, deploy_for(cfg, axis, v)) for v in axis.values for s in specs]


def point_fingerprint(study: Study, point: Point, preset: Any) -> str:
    """Everything a point's cells depend on (chips count and method list excluded: they only select cells)."""
    c = study.cfg.to_dict()
    for k in ("chips", "methods", "selective"):
        c.pop(k)
    s = point.spec
    return json_fingerprint({"config": c, "preset": preset.to_dict(), "version": CELL_VERSION,
                         "spec": [s.backbone, s.block, s.verify, s.selection, s.bn_recalibration]})


def run_sweep(cfg: StudyConfig, axis: SweepAxis | str, values: Sequence[Any] | None = None,
              out: str | Path | None = None, *, methods: Sequence[str] | None = None, chips: int | None = None,
              times: Sequence[Any] | None = None, executor: Any = None, workers: int | None = None,
              scheduler: str | None = None, threads: int | None = 1, progress: bool = True,
              on_cell: Callable[[str, int, dict[str, Any]], None] | None = None, plot: bool = True,
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
        on_cell: called as ``on_cell(point_id, chip, result)`` after each new cell is saved (progress hooks).
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
        bad = [m for m in methods if m not in METHODS]
        if bad:
            raise ConfigError(f"unknown method(s) {bad}; valid: {', '.join(METHODS)}")
        cfg.methods = list(methods)
    cfg.validate()
    presets_by_value = check_axis(cfg, axis)

    own = executor is None
    ex = executor if executor is not None else make_executor(workers, scheduler, threads)  # a bad --scheduler fails
    try:                                                                                   # here, before training
        study = Study(cfg, Path(out), progress=progress)
        points = build_points(study, axis, cfg.methods)
        study.prepare([p.spec for p in points])
    except BaseException:
        if own:
            ex.close()
        raise
    registered = register_study(study)
    deploy_presets = {}
    for p in points:
        k = json_fingerprint(p.deploy)
        if k not in deploy_presets:
            deploy_presets[k] = presets_by_value.get(p.axis_value) or _load_deploy(p.deploy)
    ids = {p.id: f"{p.id}@{point_fingerprint(study, p, deploy_presets[json_fingerprint(p.deploy)])}" for p in points}

    store = CellStore(study.out / "sweep_cells.json", f"sweep-cells-v{CELL_VERSION}")
    todo = [(p, chip) for p in points for chip in range(cfg.chips) if store.get(ids[p.id], chip) is None]
    total = len(points) * cfg.chips
    threads = threads if threads is not None else ex.threads
    try:
        bar = tqdm(total=total, initial=total - len(todo), desc=f"sweep {axis.kind}: cells", disable=not progress)
        tasks = [study.cell_task(p.spec, chip, threads, deploy=p.deploy) for p, chip in todo]
        for i, result in ex.run(run_cell_task, tasks):
            p, chip = todo[i]
            store.put(ids[p.id], chip, result)
            bar.set_postfix_str(f"{p.id} chip {chip}")
            bar.update(1)
            if on_cell is not None:
                on_cell(p.id, chip, result)
        bar.close()
        where = ex.describe()
    finally:
        unregister_study(registered)
        if own:
            ex.close()
    cells = {p.id: [store.get(ids[p.id], chip) for chip in range(cfg.chips)] for p in points}
    result = assemble_sweep(study, axis, points, cells, deploy_presets,
                            note=TRAINING_NOTE.format(preset=cfg.preset), executor=where,
                            resumed=total - len(todo))
    result.data["wall_time_s"] = time.perf_counter() - t0
    result.save()
    if plot:
        result.plot()
        result.save()
    return result
