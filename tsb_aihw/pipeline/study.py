"""One TSB study: train the backbones, then deploy every method on the same N simulated chips.

Each step is a function usable alone (``train_backbone``, ``program_chip``, ``read_back``, ``train_chip_block``,
``deploy_block``); ``run_study`` strings them together, saves every finished (method, chip) cell as it
completes and skips finished cells on a re-run.

Cells are independent tasks (``CellTask`` -> ``run_cell_task``): training happens once in the calling process
(checkpoints in ``out/checkpoints/``), then every (method, chip) cell builds a fresh analog model and seeds
programming, read-back, per-chip training, BN recalibration and evaluation from (seed, chip), so a cell gives
the same numbers in-process, in a process pool or on a Dask worker (``tsb_aihw.parallel``).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from tsb_aihw.analog import load_read_back, read_back, to_analog, weight_report
from tsb_aihw.baselines import recalibrate_bn, selection_masks
from tsb_aihw.data import get_dataset, make_loader
from tsb_aihw.devices import DevicePreset, load_preset, programming_cost
from tsb_aihw.errors import TSBError
from tsb_aihw.evaluation import evaluate_accuracy, format_time, parse_time, summarize
from tsb_aihw.models import get_model, get_tsb, insert_tsb
from tsb_aihw.models.pretrained import load_state_checked, read_state_dict
from tsb_aihw.pipeline.chip import drift_chip, program_chip
from tsb_aihw.pipeline.claims import compute_claims
from tsb_aihw.pipeline.config import StudyConfig
from tsb_aihw.pipeline.methods import BASE_METHODS, MethodSpec, selective_specs
from tsb_aihw.training import train_block, train_noise_injection
from tsb_aihw.utils.device import resolve_device
from tsb_aihw.utils.io import atomic_write_json, ensure_writable_dir, json_fingerprint, read_json
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.seeding import derive_seed, seed_everything

CELL_VERSION = 2  # bump when a cell's computation changes, so stored cells are not mixed with new ones


@dataclass
class StudyData:
    train: Any
    val: Any
    test: Any
    info: Any
    test_info: Any


def load_study_data(cfg: StudyConfig) -> StudyData:
    """Train/val/test loaders of the configured dataset (test optionally cut to ``eval_limit`` images)."""
    d = cfg.data
    kw = dict(root=d.root, download=d.download, seed=cfg.seed)
    train = get_dataset(d.name, "train", **kw)
    val = get_dataset(d.name, "val", **kw)
    test = get_dataset(d.name, "test", **kw)
    test_info = test.info
    if d.eval_limit is not None and d.eval_limit < len(test):
        test = torch.utils.data.Subset(test, range(d.eval_limit))
    return StudyData(
        train=make_loader(train, d.batch_size, shuffle=True, seed=cfg.seed),
        val=make_loader(val, d.eval_batch_size),
        test=make_loader(test, d.eval_batch_size),
        info=train.info, test_info=test_info,
    )




class Checkpoints:
    """Digital weights + the config that produced them, so a re-run reuses a trained backbone or block."""

    def __init__(self, root: Path, folder: str = "checkpoints"):
        self.root = Path(root) / folder
        self.root.mkdir(parents=True, exist_ok=True)

    def load(self, name: str, key: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        path = self.root / f"{name}.pt"
        if not path.exists():
            return None
        blob = read_state_dict(path)  # weights_only: tensors + plain data; a damaged file is a ConfigError
        if not isinstance(blob, dict) or blob.get("fingerprint") != json_fingerprint(key):
            return None
        return blob["state_dict"], blob["meta"]

    def path(self, name: str) -> Path:
        return self.root / f"{name}.pt"

    def save(self, name: str, key: dict[str, Any], state: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        import io

        from tsb_aihw.utils.io import atomic_write_bytes

        buf = io.BytesIO()
        torch.save({"fingerprint": json_fingerprint(key), "key": key, "state_dict": state, "meta": meta}, buf)
        atomic_write_bytes(self.root / f"{name}.pt", buf.getvalue())


class CellStore:
    """Finished (method, chip) results in one JSON file, rewritten atomically after every cell."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.fingerprint = fingerprint
        self.cells: dict[str, dict[str, Any]] = {}
        if path.exists():
            blob = read_json(path)
            if blob.get("fingerprint") == fingerprint:
                self.cells = blob["cells"]

    def get(self, method: str, chip: int) -> dict[str, Any] | None:
        return self.cells.get(f"{method}#{chip}")

    def put(self, method: str, chip: int, value: dict[str, Any]) -> None:
        self.cells[f"{method}#{chip}"] = value
        atomic_write_json(self.path, {"fingerprint": self.fingerprint, "cells": self.cells})


def build_backbone(cfg: StudyConfig, info: Any) -> nn.Module:
    """A fresh backbone of the configured architecture, sized for the dataset."""
    return get_model(cfg.model.name, num_classes=info.num_classes, in_channels=info.in_channels,
                     width=cfg.model.width, input_size=info.image_size[0])


def training_noise_std(cfg: StudyConfig, preset: DevicePreset) -> float:
    """Weight-noise std (relative to each layer's abs-max) for noise injection: the config's, else the preset's."""
    return cfg.backbone.noise_std if cfg.backbone.noise_std is not None else preset.training_noise_std


def train_backbone(cfg: StudyConfig, data: StudyData, preset: DevicePreset, epochs: int, seed: int,
                   progress: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Noise-injection (hardware-aware) training of a fresh backbone for ``epochs`` epochs."""
    seed_everything(seed)  # before building: the initial weights come from torch's global generator
    model = build_backbone(cfg, data.info)
    noise = training_noise_std(cfg, preset)
    res = train_noise_injection(model, data.train, data.val, noise_std=noise, epochs=epochs, lr=cfg.backbone.lr,
                                device=cfg.device, seed=seed, progress=progress)
    return model, {"train_time_s": res.wall_time_s, "epochs": epochs, "noise_std": noise,
                   "history": res.to_dict().get("history")}


def train_chip_block(model_tsb: nn.Module, weights: dict[str, torch.Tensor], cfg: StudyConfig, data: StudyData,
                     seed: int, progress: bool = False) -> tuple[torch.Tensor, float]:
    """Train a fresh zero-initialised block on a digital twin holding one chip's read-back backbone weights.

    Returns the trained block weight and the wall time."""
    twin = copy.deepcopy(model_tsb)
    load_read_back(twin, {k: v for k, v in weights.items() if not k.startswith("tsb")})
    block = get_tsb(twin)
    block.reset_parameters()
    seed_everything(seed)
    res = train_block(twin, data.train, block_params=list(block.parameters()), epochs=cfg.block.epochs,
                      lr=cfg.block.lr, device=cfg.device, seed=seed, progress=progress)
    return block.conv.weight.detach().clone(), res.wall_time_s


def deploy_block(analog: nn.Module, weight: torch.Tensor, chip_seed: int) -> None:
    """Write the block's weights into its (write-verified) tile and program them: verify runs here."""
    layer = get_tsb(analog).conv
    layer.set_weights(weight)
    program_chip(analog, derive_seed(chip_seed, "block"), only="tsb", new_target=True)


class Study:
    """Holds the shared state of one study (data, preset, trained models) and runs its methods per chip.

    ``train_preset`` (the config's preset) sets the training noise and the checkpoint keys; ``preset`` is the
    device the chips are programmed on. They are the same object unless ``with_preset`` made a variant that
    deploys the same trained models on another device (sweeps). ``train=False`` (workers) never trains: a
    missing checkpoint is an error, since training belongs to the parent process.
    """

    def __init__(self, cfg: StudyConfig, out: Path, progress: bool = True, train: bool = True):
        self.cfg = cfg.validate()
        self.can_train = train
        if train:
            self.out = ensure_writable_dir(out)
        else:
            self.out = Path(out)
            if not (self.out / "checkpoints").is_dir():
                raise TSBError(f"worker: {self.out / 'checkpoints'} not found; the output directory must be "
                               "readable by every worker (a shared filesystem for a remote Dask cluster)")
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.train_preset = load_preset(cfg.preset, **cfg.preset_overrides)
        self.preset = self.train_preset
        self.times = [parse_time(t) for t in cfg.times]
        self.labels = [format_time(t) for t in self.times]
        self.data = load_study_data(cfg)
        self.ckpt = Checkpoints(self.out) if train else _ReadOnlyCheckpoints(self.out)
        self.meta: dict[str, dict[str, Any]] = {}
        self.models: dict[str, nn.Module] = {}
        self.masks: dict[tuple[str, float], dict[str, torch.Tensor]] = {}
        self.train_times: dict[str, float] = {}

    def with_preset(self, preset: DevicePreset) -> "Study":
        """A view of this study that deploys the same data and trained models on ``preset``."""
        other = copy.copy(self)  # shares data, models, masks and checkpoints on purpose
        other.preset = preset
        return other

    @property
    def training_noise_std(self) -> float:
        return training_noise_std(self.cfg, self.train_preset)

    def reseed_train_loader(self, *keys: Any) -> Any:
        """The training loader with its shuffle generator reset from (seed, keys): the batches a step sees do
        not depend on what ran before it in this process."""
        gen = getattr(self.data.train, "generator", None)
        if gen is not None:
            gen.manual_seed(derive_seed(self.cfg.seed, "loader", *[str(k) for k in keys]))
        return self.data.train

    # -- training ---------------------------------------------------------------------------------------------
    def _key(self, what: str, **extra: Any) -> dict[str, Any]:
        c = self.cfg.to_dict()
        data = {k: c["data"][k] for k in ("name", "root", "batch_size")}  # what training depends on
        return {"what": what, "model": c["model"], "data": data, "backbone": c["backbone"], "seed": c["seed"],
                "preset": self.train_preset.to_dict(), **extra}

    def backbone(self, which: str) -> nn.Module:
        if which in self.models:
            return self.models[which]
        epochs = self.cfg.backbone.full_epochs if which == "full" else self.cfg.backbone.early_epochs
        key = self._key(f"backbone_{which}", epochs=epochs)
        hit = self.ckpt.load(f"backbone_{which}", key)
        if hit:
            state, meta = hit
            model = build_backbone(self.cfg, self.data.info)
            load_state_checked(model, state, str(self.ckpt.path(f"backbone_{which}")))
        else:
            self._need_training(f"backbone_{which}")
            self.reseed_train_loader("backbone", which)
            model, meta = train_backbone(self.cfg, self.data, self.train_preset, epochs,
                                         derive_seed(self.cfg.seed, "backbone", which), self.progress)
            self.ckpt.save(f"backbone_{which}", key, model.state_dict(), meta)
        model.eval()
        self.models[which], self.meta[f"backbone_{which}"] = model, meta
        return model

    def tsb_model(self) -> nn.Module:
        """The early backbone with the (zero-initialised) shared block inserted."""
        if "early_tsb" not in self.models:
            b = self.cfg.block
            self.models["early_tsb"] = insert_tsb(copy.deepcopy(self.backbone("early")), k=b.k, where=b.where,
                                                  residual=b.residual).eval()
        return self.models["early_tsb"]

    def fixed_block(self, kind: str) -> nn.Module:
        """A block trained once for all chips: on the clean backbone, or on freshly drawn backbone noise."""
        name = f"block_{kind}"
        if name in self.models:
            return self.models[name]
        model = copy.deepcopy(self.tsb_model())
        b = self.cfg.block
        noise = 0.0 if kind == "clean" else self.training_noise_std
        key = self._key(name, block=self.cfg.to_dict()["block"], noise=noise)
        hit = self.ckpt.load(name, key)
        if hit:
            state, meta = hit
            load_state_checked(model, state, str(self.ckpt.path(name)))
        else:
            self._need_training(name)
            seed = derive_seed(self.cfg.seed, name)
            seed_everything(seed)
            res = train_block(model, self.reseed_train_loader(name), block_params=list(get_tsb(model).parameters()), epochs=b.epochs,
                              lr=b.lr, device=self.cfg.device, seed=seed, progress=self.progress,
                              backbone_noise_std=noise)
            meta = {"train_time_s": res.wall_time_s, "noise_std": noise}
            self.ckpt.save(name, key, model.state_dict(), meta)
        self.models[name], self.meta[name] = model.eval(), meta
        return self.models[name]

    def _need_training(self, name: str) -> None:
        if not self.can_train:
            raise TSBError(f"worker: no valid checkpoint {self.ckpt.root / (name + '.pt')} for this config; "
                           "training runs in the parent before cells are dispatched, so the worker must see the "
                           "parent's output directory (a shared filesystem) and the same config")

    def digital_model(self, spec: MethodSpec) -> nn.Module:
        if spec.block is None:
            return self.backbone(spec.backbone)
        if spec.block in ("clean", "generic"):
            return self.fixed_block(spec.block)
        return self.tsb_model()

    def train_time(self, spec: MethodSpec, block_time_per_chip: float) -> float:
        if spec.backbone == "full":
            return self.meta["backbone_full"]["train_time_s"]
        t = self.meta["backbone_early"]["train_time_s"]
        if spec.block in ("clean", "generic"):
            t += self.meta[f"block_{spec.block}"]["train_time_s"]
        elif spec.block == "chip":
            t += block_time_per_chip
        return t

    # -- deployment --------------------------------------------------------------------------------------------
    def selection(self, method: str, fraction: float) -> dict[str, torch.Tensor]:
        """Selective write-verify masks on (b)'s digital backbone (computed once per process, seeded)."""
        key = (method, float(fraction))
        if key not in self.masks:
            self.masks[key] = selection_masks(self.backbone("full"), self.reseed_train_loader("select", method),
                                              fraction, method, seed=derive_seed(self.cfg.seed, "select", method))
        return self.masks[key]

    def analog_model(self, spec: MethodSpec, digital: nn.Module) -> nn.Module:
        verify: Any = spec.verify
        if spec.verify == "masks":
            verify = self.selection(*spec.selection)
        return to_analog(digital, self.preset, verify=verify).eval()

    def run_chip(self, spec: MethodSpec, analog: nn.Module, chip: int) -> dict[str, Any]:
        """Program ``analog`` as chip ``chip``, adapt (block / BN) if the method does, evaluate at every time.

        Every random step is seeded from (seed, chip, step): the result depends on nothing else."""
        chip_seed = derive_seed(self.cfg.seed, "chip", chip)
        program_chip(analog, chip_seed)
        block_time = 0.0
        if spec.block == "chip":
            b = self.cfg.block
            torch.manual_seed(derive_seed(chip_seed, "read-back"))
            weights = read_back(analog, t=b.read_time, n_reads=b.n_reads)
            self.reseed_train_loader("block-train", chip)
            w, block_time = train_chip_block(self.tsb_model(), weights, self.cfg, self.data,
                                             derive_seed(chip_seed, "block-train"))
            deploy_block(analog, w, chip_seed)
        if spec.bn_recalibration:
            torch.manual_seed(derive_seed(chip_seed, "bn-recalibration"))
            recalibrate_bn(analog, self.reseed_train_loader("bn", chip), batches=self.cfg.bn_recalibration_batches,
                           device=self.cfg.device)
        cost = programming_cost(analog, self.preset).to_dict()
        fraction = weight_report(analog).verified_fraction
        accs = []
        for t in self.times:
            drift_chip(analog, t, chip_seed)
            torch.manual_seed(derive_seed(chip_seed, "eval", repr(float(t))))  # periphery (IO) noise
            accs.append(evaluate_accuracy(analog, self.data.test, device=self.cfg.device, fast=self.cfg.fast_eval))
        return {"acc": accs, "cost": cost, "block_time_s": block_time, "verified_fraction": fraction}

    def run_cell(self, spec: MethodSpec, chip: int) -> dict[str, Any]:
        """One (method, chip) cell on a freshly converted analog model (no state carried between cells)."""
        analog = self.analog_model(spec, self.digital_model(spec))
        return self.run_chip(spec, analog, chip)

    def prepare(self, specs: list[MethodSpec]) -> None:
        """Train (or load) every digital model the methods need, before any cell is dispatched."""
        self.backbone("full")
        for spec in specs:
            self.digital_model(spec)

    def cell_task(self, spec: MethodSpec, chip: int, threads: int | None = None,
                  deploy: dict[str, Any] | None = None) -> "CellTask":
        return CellTask(config=self.cfg.to_dict(), out=str(self.out.resolve()), spec=spec, chip=chip,
                        deploy=deploy, threads=threads)

    def run(self, specs: list[MethodSpec], executor: Any = None, threads: int | None = None) -> dict[str, Any]:
        """Every (method, chip) cell; finished cells come from ``cells.json``, the rest run on ``executor``
        (default: in this process) and are saved one by one as they finish."""
        from tsb_aihw.parallel import SerialExecutor, current_executor

        executor = executor or current_executor() or SerialExecutor()
        threads = threads if threads is not None else executor.threads
        cells = CellStore(self.out / "cells.json", json_fingerprint(self._key("cells", config=self.cfg.to_dict(),
                                                                          version=CELL_VERSION)))
        self.prepare(specs)
        registered = register_study(self)
        todo = [(spec, chip) for spec in specs for chip in range(self.cfg.chips) if cells.get(spec.key, chip) is None]
        bar = tqdm(total=len(specs) * self.cfg.chips, initial=len(specs) * self.cfg.chips - len(todo),
                   desc=f"{self.preset.name}: methods x chips", disable=not self.progress)
        tasks = [self.cell_task(spec, chip, threads) for spec, chip in todo]
        try:
            for i, result in executor.run(run_cell_task, tasks):
                spec, chip = todo[i]
                cells.put(spec.key, chip, result)
                bar.set_postfix_str(f"{spec.key} chip {chip}")
                bar.update(1)
        finally:
            unregister_study(registered)
        bar.close()
        return {spec.key: [cells.get(spec.key, chip) for chip in range(self.cfg.chips)] for spec in specs}


class _ReadOnlyCheckpoints(Checkpoints):
    """Checkpoints of a worker: read, never created or written."""

    def __init__(self, root: Path):
        self.root = root / "checkpoints"

    def save(self, *a: Any, **k: Any) -> None:  # pragma: no cover - guarded by Study._need_training
        raise TSBError("workers never write checkpoints")


@dataclass(frozen=True)
class CellTask:
    """What travels to a worker: the config, where the checkpoints are, the device, the method and the chip."""

    config: dict[str, Any]
    out: str
    spec: MethodSpec
    chip: int
    deploy: dict[str, Any] | None = None  # {"preset": name or path, "overrides": {dotted key: value}}; None = config's
    threads: int | None = None  # torch threads while the cell runs (None: leave as is)


_STUDIES: dict[tuple[str, str], Study] = {}
_VARIANTS: dict[tuple[str, str, str], Study] = {}


def register_study(study: Study) -> tuple[str, str]:
    """Let tasks run in this process reuse ``study`` (its in-memory data and models) instead of reloading."""
    key = (str(study.out.resolve()), json_fingerprint(study.cfg.to_dict()))
    _STUDIES[key] = study
    return key


def unregister_study(key: tuple[str, str]) -> None:
    """Forget a registered study and its device variants (frees their models once the caller is done)."""
    _STUDIES.pop(key, None)
    for vkey in [k for k in _VARIANTS if k[:2] == key]:
        del _VARIANTS[vkey]


def _study_for(task: CellTask) -> Study:
    key = (task.out, json_fingerprint(task.config))
    study = _STUDIES.get(key)
    if study is None:
        from tsb_aihw.pipeline.config import study_config_from_dict

        study = _STUDIES[key] = Study(study_config_from_dict(task.config, "cell task"), Path(task.out),
                                      progress=False, train=False)
    if task.deploy is None:
        return study
    vkey = key + (json_fingerprint(task.deploy),)
    if vkey not in _VARIANTS:
        _VARIANTS[vkey] = study.with_preset(load_preset(task.deploy["preset"], overrides=task.deploy["overrides"]))
    return _VARIANTS[vkey]


def run_cell_task(task: CellTask) -> dict[str, Any]:
    """Run one cell wherever this is called (any executor): the result depends only on the task."""
    threads = torch.get_num_threads()
    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        study = _study_for(task)
        return study.run_cell(task.spec, task.chip)
    finally:
        torch.set_num_threads(threads)


def _summary(values: list[float]) -> dict[str, float]:
    return summarize(values).to_dict()


def _mean_cost(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = rows[0]["cost"].keys()
    return {k: sum(r["cost"][k] for r in rows) / len(rows) for k in keys
            if isinstance(rows[0]["cost"][k], (int, float))}


def method_specs(study: Study) -> list[MethodSpec]:
    """Base methods in the configured order, then the selective write-verify grid around TSB's fraction."""
    cfg = study.cfg
    specs = [BASE_METHODS[m] for m in cfg.methods if m in BASE_METHODS]
    if "selective_verify" in cfg.methods:
        tsb_fraction = weight_report(study.tsb_model()).verified_fraction
        fractions = sorted({round(tsb_fraction * x, 8) for x in cfg.selective.fraction_multipliers}
                           | {float(f) for f in cfg.selective.extra_fractions})
        specs += selective_specs(cfg.selective.methods, [f for f in fractions if 0 < f < 1])
    return specs


def assemble(study: Study, specs: list[MethodSpec], cells: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per-method summaries, gaps against ONE reference (the clean accuracy of (b)), claims and provenance."""
    cfg, labels = study.cfg, study.labels
    full = study.backbone("full")
    reference = evaluate_accuracy(full, study.data.test, device=cfg.device)
    methods: dict[str, Any] = {}
    for spec in specs:
        rows = cells[spec.key]
        per_chip = [r["acc"] for r in rows]
        block_time = sum(r["block_time_s"] for r in rows) / len(rows)
        entry = {
            "label": spec.label, "backbone": spec.backbone, "block": spec.block, "verify": spec.verify,
            "selection": list(spec.selection) if spec.selection else None, "curve": spec.curve,
            "verified_fraction": rows[0]["verified_fraction"], "cost": _mean_cost(rows),
            "clean_accuracy": evaluate_accuracy(study.digital_model(spec), study.data.test, device=cfg.device)
            if spec.block != "chip" else None,
            "train_time_s": study.train_time(spec, block_time),
            "accuracy": {t: _summary([c[i] for c in per_chip]) for i, t in enumerate(labels)},
            "gap": {t: _summary([reference - c[i] for c in per_chip]) for i, t in enumerate(labels)},
            "per_chip": per_chip,
        }
        if spec.block == "chip":
            entry["backbone_time_s"] = study.meta["backbone_early"]["train_time_s"]
            entry["block_time_s"] = block_time
        methods[spec.key] = entry
    tsb = study.tsb_model()
    block = get_tsb(tsb)
    rep = weight_report(tsb)
    results = {
        "config": cfg.to_dict(), "seed": cfg.seed, "provenance": provenance(),
        "preset": study.preset.to_dict() | {"name": study.preset.name},
        "model": cfg.model.name, "width": cfg.model.width,
        "dataset": {"name": cfg.data.name, "split_note": study.data.test_info.split_note,
                    "eval_size": len(study.data.test.dataset)},
        "times": study.times, "time_labels": labels, "reference_accuracy": reference,
        "reference_definition": "clean digital test accuracy of (b), the noise-injection baseline trained to "
                                "full convergence; every gap = reference - chip accuracy",
        "tsb": {"k": block.k, "sites": len(getattr(tsb, "tsb_sites", []) or []), "weights": block.conv.weight.numel(),
                "verified_fraction": rep.verified_fraction},
        "training": {k: v for k, v in study.meta.items()},
        "methods": methods,
    }
    results["claims"] = compute_claims(methods, labels)
    return results


def run_study(cfg: StudyConfig, out: str | Path, progress: bool = True, executor: Any = None,
              threads: int | None = None) -> dict[str, Any]:
    """Run (or resume) one study and write ``results.json``, CSVs and plots into ``out``.

    ``executor`` (``tsb_aihw.parallel``; default: the one set by ``use_executor``, else in-process) runs the
    (method, chip) cells; ``threads`` sets torch's thread count inside each cell."""
    from tsb_aihw.pipeline.report import write_plots, write_tables

    t0 = time.perf_counter()
    study = Study(cfg, Path(out), progress=progress)
    specs = method_specs(study)
    cells = study.run(specs, executor=executor, threads=threads)
    results = assemble(study, specs, cells)
    results["plots"] = [str(p.name) for p in write_plots(results, study.out)]
    write_tables(results, study.out)
    results["wall_time_s"] = time.perf_counter() - t0
    atomic_write_json(study.out / "results.json", results)
    return results
