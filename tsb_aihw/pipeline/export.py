"""Copy a finished study into a folder meant for the repository (``results/<study>/``): its results, report,
tables and plots, and every trained digital model as a plain state dict, so the numbers can be re-checked
(and the models reused) without re-training.

Why a plain state dict: a checkpoint in ``OUT/checkpoints`` carries the key that produced it (for resuming);
the exported file is just ``model.state_dict()``, loadable with ``get_model`` at the config's width (see
``models.json`` for each file's model, what it is and its training meta). A fixed block trained on the frozen
early backbone is exported as its own tensors only, with the backbone file it belongs to (``base``).
Exporting never replaces earlier files: a destination that holds anything is refused unless ``move_aside``
renames it first.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.io import atomic_write_json, read_json
from tsb_aihw.utils.store import rename_aside

#: checkpoint file -> exported name (methods' names, as in results.json); early budgets keep their epochs
EXPORT_NAMES = {"backbone_full": "full_noise_injection", "backbone_early": "backbone_early",
                "block_clean": "tsb_clean", "block_generic": "tsb_generic"}
#: study files worth committing (results and what a reader looks at); store.json and checkpoints stay in runs/
STUDY_FILES = ("results.json", "report.md", "methods.csv")
STUDY_SUFFIXES = (".csv", ".png")


@dataclass
class ExportedModel:
    """One exported state dict: how to rebuild its model and what it is."""

    file: str
    checkpoint: str
    model: dict[str, Any]  # get_model's keyword arguments (results.json's model_args)
    tsb_block: dict[str, Any] | None  # insert_tsb's k / where / residual when the file holds a block
    base: str | None  # a block's backbone file (the block file holds only the block's tensors)
    meta: dict[str, Any]
    key: dict[str, Any] | None = None  # what it was trained for (``models_from`` takes it only for the same key)


def _export_name(stem: str) -> str:
    base, _, budget = stem.partition("-")
    name = EXPORT_NAMES.get(base, base)
    return f"{name}-{budget}" if budget else name


def study_dirs(source: Path) -> list[Path]:
    """``source`` itself when it is one study (results.json with methods), else its study subfolders."""
    def is_study(d: Path) -> bool:
        return (d / "results.json").is_file() and "methods" in read_json(d / "results.json")

    found = [source] if is_study(source) else sorted(d for d in source.iterdir() if d.is_dir() and is_study(d))
    if not found:
        raise ConfigError(f"{source} holds no finished study (no results.json with methods); run the study first")
    return found


def export_study(source: str | os.PathLike, dest: str | os.PathLike, move_aside: bool = False) -> list[Path]:
    """Export every study under ``source`` into ``dest`` (one subfolder per study when there are several)."""
    import torch

    from tsb_aihw.models.pretrained import read_state_dict

    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise ConfigError(f"{source} is not a directory; pass a study's --out")
    studies = study_dirs(source)
    if dest.exists() and any(dest.iterdir()):
        if not move_aside:
            raise ConfigError(f"{dest} is not empty; pass another destination, or add --move-aside to rename it to "
                              f"{dest}.moved-<time> (nothing is deleted)")
        rename_aside(dest, "export")
    written: list[Path] = []
    for study in studies:
        out = dest if len(studies) == 1 else dest / study.name
        out.mkdir(parents=True, exist_ok=True)
        results = read_json(study / "results.json")
        cfg = results["config"]
        report = [source / "report.md"] if study != source and len(studies) == 1 else []  # run's combined report
        for f in [*sorted(study.iterdir()), *[r for r in report if r.is_file()]]:
            if f.is_file() and (f.name in STUDY_FILES or f.suffix in STUDY_SUFFIXES):
                shutil.copy2(f, out / f.name)
                written.append(out / f.name)
        models: list[ExportedModel] = []
        early = f"backbone_early-{cfg['backbone']['early_epochs']}ep.pt"
        for ckpt in sorted((study / "checkpoints").glob("*.pt")):
            blob = read_state_dict(ckpt)  # a checkpoint: {fingerprint, key, state_dict, meta}
            state = blob["state_dict"]
            has_block = any(k.startswith("tsb.") for k in state)
            name = f"{_export_name(ckpt.stem)}.pt"
            if has_block:  # a fixed block on the frozen early backbone: only the block's tensors are new
                state = {k: v for k, v in state.items() if k.startswith("tsb.")}
            torch.save(state, out / name)
            written.append(out / name)
            block = ({"k": results["tsb"]["k"], "where": cfg["block"]["where"], "residual": cfg["block"]["residual"]}
                     if has_block else None)  # the resolved k, not "auto"
            models.append(ExportedModel(file=name, checkpoint=ckpt.name, model=dict(results["model_args"]),
                                        tsb_block=block, base=early if has_block else None,
                                        meta=blob.get("meta") or {}, key=blob.get("key")))
        atomic_write_json(out / "models.json", {
            "how_to_load": "model = get_model(**model); model.load_state_dict(torch.load(file)); a block file: "
                           "model = insert_tsb(model, **tsb_block) and load_state_dict({**torch.load(base), "
                           "**torch.load(file)})",
            "dataset": results.get("dataset"), "models": [asdict(m) for m in models]})
        written.append(out / "models.json")
    return written


def check_sources(models_from: Sequence[str | os.PathLike]) -> list[Path]:
    """The ``models_from`` folders as paths, each checked to exist: a missing one is a one-line error before
    any output directory is made or anything is trained (every entry point and the CLI call this)."""
    paths = [Path(d) for d in models_from]
    for d in paths:
        if not d.is_dir():
            raise ConfigError(f"--models-from {d}: no such directory; pass a finished run's --out or an exported "
                              "results/<study> folder")
    return paths


def find_trained(source: str | os.PathLike, file: str, key: Mapping[str, Any]) -> tuple[dict[str, Any],
                                                                                       dict[str, Any]] | str:
    """The model ``file`` (a checkpoint name, e.g. ``backbone_full``) held by ``source`` if it was trained for
    ``key``: ``source`` is a run's output directory (its checkpoints) or an exported folder (``models.json``).

    Returns its state dict and meta (with ``adopted_from``), or one line saying why it is not taken. An export
    made before models.json recorded keys is matched by the key its recorded study config gives."""
    source = Path(source)
    holders = [d for d in (source, *sorted(p for p in source.iterdir() if p.is_dir()))
               if (d / "models.json").is_file() or (d / "checkpoints" / f"{file}.pt").is_file()]
    if not holders:
        return f"{source} holds no {file} (neither a models.json entry nor checkpoints/{file}.pt); training it here"
    reasons = []
    for holder in holders:  # a study folder itself, or the per-preset study folders of a run's --out
        found = _find_in(holder, file, key)
        if not isinstance(found, str):
            return found
        reasons.append(found)
    if len(reasons) == 1:
        return reasons[0]
    return f"{source}: no study folder has {file} for this config; training it here"


def _find_in(source: Path, file: str, key: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
    from tsb_aihw.models.pretrained import read_state_dict
    from tsb_aihw.utils.schema import differing_keys
    from tsb_aihw.utils.store import key_differences, key_fingerprint

    if (source / "models.json").is_file():
        entries = [m for m in read_json(source / "models.json").get("models", [])
                   if m.get("checkpoint") == f"{file}.pt"]
        if not entries:
            return f"{source}/models.json has no {file}; training it here"
        entry = entries[0]
        held = entry.get("key") or _derived_key(source, file, entry)
        if isinstance(held, str):
            return held
        if key_fingerprint(held) != key_fingerprint(key):
            return (f"{source} has {file} trained for another configuration (differs in: "
                    f"{', '.join(differing_keys(held, dict(key))[:8])}); training it here")
        state = dict(read_state_dict(source / entry["file"]))
        if entry.get("base"):
            state = {**read_state_dict(source / entry["base"]), **state}
        return state, {**(entry.get("meta") or {}), "adopted_from": str(source / entry["file"])}
    path = source / "checkpoints" / f"{file}.pt"
    blob = read_state_dict(path)
    if not isinstance(blob, dict):
        return f"{path} is not a tsb-aihw checkpoint; training it here"
    differs = key_differences(blob, key)
    if differs is not None:
        return f"{path} was trained for another configuration (differs in: {differs}); training it here"
    return dict(blob["state_dict"]), {**(blob.get("meta") or {}), "adopted_from": str(path)}


def _derived_key(source: Path, file: str, entry: Mapping[str, Any]) -> dict[str, Any] | str:
    """The key an export without recorded keys was trained for: from its results.json config, checked
    against the noise std its training meta recorded (a preset changed since is a mismatch, not a guess)."""
    from tsb_aihw.devices import load_preset
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.trained import checkpoint_keys

    try:
        cfg = study_config_from_dict(read_json(source / "results.json")["config"], f"{source}/results.json")
        preset = load_preset(cfg.preset, overrides=cfg.preset_overrides)
    except (ConfigError, KeyError, OSError) as exc:
        return f"{source}: cannot tell what {file} was trained for ({exc}); training it here"
    noise_std = cfg.backbone.noise_std if cfg.backbone.noise_std is not None else preset.training_noise_std
    recorded = (entry.get("meta") or {}).get("noise_std")
    if recorded is not None and file.startswith("backbone") and abs(float(recorded) - noise_std) > 1e-9 * noise_std:
        return (f"{source}: {file} was trained at noise std {recorded:.6g}, but its config now gives "
                f"{noise_std:.6g} (the preset changed); training it here")
    held = checkpoint_keys(cfg, noise_std).get(file)
    return held if held is not None else f"{source}: {file} is not a checkpoint of its study; training it here"
