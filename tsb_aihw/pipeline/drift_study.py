"""Drift study of one trained model on several device presets: accuracy vs time over N chips, one call.

``run_drift_study`` puts the same digital model on every preset (``to_analog(model, preset, verify)``) and
runs one cell per (preset, chip) through :func:`tsb_aihw.parallel.run_cells` (in-process, a process pool or
Dask), each saved in the output directory's result store, keyed by the preset's *content* (two presets with
the same file stem, or the same preset with other overrides, never share a cell). Chip ``i`` is the same chip
as in ``tsb-aihw run`` for the same model, preset and seed. It writes ``drift.json`` (config, seed,
provenance, per-chip accuracies and mean/std/95% CI per preset and time), ``drift_summary.csv``,
``drift_chips.csv`` and an accuracy-vs-time plot. A model without a checkpoint is first trained with noise injection
(:func:`prepare_model`) and kept as ``OUT/checkpoints/model.pt``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.times import format_time, parse_times
from tsb_aihw.parallel.cells import ChipTask
from tsb_aihw.parallel.executor import Executor
from tsb_aihw.pipeline.config import DriftConfig
from tsb_aihw.pipeline.inputs import content_identities, data_inputs, with_inputs
from tsb_aihw.records import DriftCell, DriftPresetResult, DriftResult, ModelSource, load_record
from tsb_aihw.utils.io import JsonObject, atomic_write_csv, atomic_write_json, json_fingerprint
from tsb_aihw.utils.schema import non_default_tree
from tsb_aihw.utils.seeding import derive_seed, seed_everything
from tsb_aihw.utils.store import ResultStore

CELL_VERSION = 1


def load_model_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a digital state dict (plain, or ``{"state_dict": ...}`` as saved here) with a clear error."""
    from tsb_aihw.models.pretrained import load_state_checked
    from tsb_aihw.utils.torchfile import read_state_dict

    blob = read_state_dict(path)  # ConfigError (one line) if missing, damaged or not a torch file
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict; save one with torch.save(model.state_dict(), path)")
    load_state_checked(model, state, str(path), fix="check --model, --width and the dataset")
    return model.eval()


def build_model(cfg: DriftConfig) -> nn.Module:
    from tsb_aihw.data import get_dataset
    from tsb_aihw.models import get_model

    info = get_dataset(cfg.dataset, "test", seed=cfg.seed).info
    # the initial weights come from torch's global generator, which torch seeds randomly in every new process
    seed_everything(derive_seed(cfg.seed, "drift-study", "init"))
    return get_model(cfg.model, num_classes=info.num_classes, in_channels=info.in_channels, width=cfg.width,
                     input_size=info.image_size[0])


def prepare_model(cfg: DriftConfig, store: ResultStore, progress: bool = True) -> tuple[nn.Module, ModelSource]:
    """The digital model: loaded from ``cfg.checkpoint``, or trained with noise injection (kept in the store)."""
    from tsb_aihw.data import get_dataset, make_loader
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models.pretrained import load_state_checked
    from tsb_aihw.training import train_noise_injection

    model = build_model(cfg)
    if cfg.checkpoint is not None:
        return load_model_checkpoint(model, cfg.checkpoint), ModelSource(source=str(cfg.checkpoint))
    noise = cfg.train_noise_std
    if noise is None:
        noise = load_preset(cfg.presets[0]).training_noise_std
    key: JsonObject = {"model": cfg.model, "width": cfg.width, "dataset": cfg.dataset, "epochs": cfg.train_epochs,
                       "noise_std": noise, "seed": cfg.seed}
    content = data_inputs(cfg.dataset).get("data")
    if content is not None:  # a user's image folder: trained on other content is another model
        key["data_content"] = content["sha256"]
    ckpt = store.checkpoints
    hit = ckpt.load("model", key)
    if hit is not None:
        where = str(ckpt.path("model"))
        load_state_checked(model, hit.state_dict, where)
        return model.eval(), replace(load_record(ModelSource, hit.meta, where), reused=True)
    seed = derive_seed(cfg.seed, "drift-study", "train")
    train = make_loader(get_dataset(cfg.dataset, "train", seed=cfg.seed), 128, shuffle=True, seed=seed)
    val = make_loader(get_dataset(cfg.dataset, "val", seed=cfg.seed), 500)
    res = train_noise_injection(model, train, val, noise_std=noise, epochs=cfg.train_epochs, device=cfg.device,
                                seed=seed, progress=progress)
    source = ModelSource(source="trained", **key, train_time_s=res.wall_time_s, best_val_acc=res.best_val_acc)
    ckpt.save("model", key, model.state_dict(), source.to_dict())
    return model.eval(), source


@dataclass(frozen=True, kw_only=True)
class DriftChipTask(ChipTask):
    """One (preset, chip) cell of a drift study: where the model is and the preset."""

    model_path: str
    preset: str

    @property
    def where(self) -> str:
        return self.model_path

    def build_context(self) -> _DriftContext:
        cfg = DriftConfig(**self.config)
        return _DriftContext(cfg, load_model_checkpoint(build_model(cfg), self.model_path))

    def compute(self, ctx: _DriftContext) -> DriftCell:
        """Program chip ``chip`` on the task's preset and evaluate it at every time."""
        from tsb_aihw.analog.chip import Chip
        from tsb_aihw.evaluation.monte_carlo import evaluate_chip

        preset, analog = ctx.chip_model(self.preset)
        chip = Chip(analog, preset, ctx.cfg.seed, self.chip)
        digest = chip.program()  # from the stored target: a re-used analog model starts every chip afresh
        accs = evaluate_chip(chip, ctx.loader, parse_times(ctx.cfg.times), device=ctx.cfg.device)
        return DriftCell(accuracies=accs, seed=chip.chip_seed, digest=digest)


class _DriftContext:
    """A drift study's model and test loader in one process, and its analog model per preset."""

    def __init__(self, cfg: DriftConfig, model: nn.Module):
        from torch.utils.data import DataLoader

        from tsb_aihw.data import get_dataset

        self.cfg, self.model = cfg, model.eval()
        test: Any = get_dataset(cfg.dataset, "test", seed=cfg.seed)
        if cfg.eval_limit is not None and cfg.eval_limit < len(test):
            test = torch.utils.data.Subset(test, range(cfg.eval_limit))
        self.loader = DataLoader(test, batch_size=cfg.batch_size, shuffle=False)
        self.analog: dict[str, tuple[Any, nn.Module]] = {}

    def chip_model(self, preset_name: str) -> tuple[Any, nn.Module]:
        from tsb_aihw.analog import to_analog
        from tsb_aihw.devices import load_preset

        if preset_name not in self.analog:
            preset = load_preset(preset_name)
            self.analog[preset_name] = (preset, to_analog(self.model, preset, verify=self.cfg.verify).eval())
        return self.analog[preset_name]


def drift_identity(cfg: DriftConfig) -> JsonObject:
    """The config minus what only adds cells, and the content of a ``--checkpoint`` and of a user's image folder
    (a file rewritten in place meets its finished chips as one line, :mod:`tsb_aihw.pipeline.inputs`)."""
    c = non_default_tree(cfg)  # a new field at its neutral default keeps the identity
    for k in ("chips", "presets"):  # more chips or presets extend a study
        c.pop(k, None)
    inputs = {**data_inputs(cfg.dataset), **content_identities({"checkpoint": cfg.checkpoint})}
    return with_inputs({"kind": "drift", "config": c}, inputs)


def run_drift_study(cfg: DriftConfig, out: str | Path, progress: bool = True, executor: Executor | None = None,
                    threads: int | None = None, move_aside: bool = False) -> DriftResult:
    """``tsb-aihw drift``: accuracy vs drift time of one model on each preset over ``cfg.chips`` chips; writes
    and returns ``drift.json``. Every preset uses the same chip seeds, so presets differ only in device physics."""
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation import evaluate_accuracy
    from tsb_aihw.evaluation.stats import summaries_by_time, time_series
    from tsb_aihw.parallel.cells import run_cells, run_chip_task, sharing
    from tsb_aihw.plots import plot_accuracy_vs_time
    from tsb_aihw.utils.provenance import provenance

    cfg.validate()
    presets = {name: load_preset(name) for name in cfg.presets}
    folders = [p.folder_name for p in presets.values()]
    if len(set(folders)) != len(folders):
        raise ConfigError(f"the presets {cfg.presets} include the same device twice; give each once")
    store = ResultStore(out, "drift", drift_identity(cfg), move_aside=move_aside)
    model, source = prepare_model(cfg, store, progress=progress)
    model_path = cfg.checkpoint or str(store.checkpoints.path("model"))
    ctx = _DriftContext(cfg, model)
    config = asdict(cfg)
    tasks = [DriftChipTask(key=f"{p.folder_name}#chip{c}@{json_fingerprint([p.identity, CELL_VERSION])}",
                           config=config, model_path=model_path, preset=name, chip=c, threads=threads)
             for name, p in presets.items() for c in range(cfg.chips)]
    resumed = {name: sum(t.key in store for t in tasks if t.preset == name) for name in presets}
    with sharing(DriftChipTask.context_key(model_path, config), ctx):
        run_cells(run_chip_task, tasks, store, executor, desc="drift: presets x chips", progress=progress)
    seconds = parse_times(cfg.times)
    labels = [format_time(t) for t in seconds]
    reference = evaluate_accuracy(model, ctx.loader, device=cfg.device)
    entries: dict[str, DriftPresetResult] = {}
    for name, p in presets.items():
        rows = [load_record(DriftCell, store.get(t.key), str(store.path)) for t in tasks if t.preset == name]
        per_chip = [r.accuracies for r in rows]
        entries[name] = DriftPresetResult(identity=p.identity, folder=p.folder_name, accuracies=per_chip,
                                          chip_seeds=[r.seed for r in rows], chip_digests=[r.digest for r in rows],
                                          summary=summaries_by_time(per_chip, labels), resumed_chips=resumed[name])
    rows_csv = [{"preset": name, "time_s": t, "time_label": lab, **e.summary[lab].to_dict()}
                for name, e in entries.items() for t, lab in zip(seconds, labels)]
    chip_csv = [{"preset": name, "chip": c, "chip_seed": e.chip_seeds[c], "time_s": t, "time_label": lab,
                 "accuracy": acc} for name, e in entries.items() for c, row in enumerate(e.accuracies)
                for t, lab, acc in zip(seconds, labels, row)]
    plots = plot_accuracy_vs_time({name: time_series(e.accuracies, seconds) for name, e in entries.items()},
                                  store.out / "accuracy_vs_time", reference=reference,
                                  title=f"{cfg.chips} chips per preset, verify={cfg.verify}")
    result = DriftResult(config=config, seed=cfg.seed, chips=cfg.chips, times=seconds, time_labels=labels,
                         verify=cfg.verify, reference_accuracy=reference,
                         reference_definition="digital test accuracy of the same model (no device effects)",
                         presets=entries, plots=[p.name for p in plots], model_source=source, provenance=provenance())
    atomic_write_csv(store.out / "drift_summary.csv", rows_csv)
    atomic_write_csv(store.out / "drift_chips.csv", chip_csv)
    atomic_write_json(store.out / "drift.json", result.to_dict())
    return result


def format_drift_table(result: DriftResult) -> str:
    """Mean ± std (95% CI) per preset and time, as a plain-text table for the terminal."""
    labels = result.time_labels
    head = f"{'preset':<16}" + "".join(f"{lab:>22}" for lab in labels)
    lines = [f"digital reference accuracy: {100 * result.reference_accuracy:.2f}%", head]
    for name, e in result.presets.items():
        cells = [f"{100 * e.summary[lab].mean:6.2f} ± {100 * e.summary[lab].std:5.2f}%" for lab in labels]
        lines.append(f"{name:<16}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)
