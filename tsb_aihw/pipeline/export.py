"""Copy a finished study into a folder meant for the repository (``results/<study>/``): its results, report,
tables and plots, and every trained digital model as a plain state dict, so the numbers can be re-checked
(and the models reused) without re-training.

Why a plain state dict: a checkpoint in ``OUT/checkpoints`` carries the key that produced it (for resuming);
the exported file is just ``model.state_dict()``, loadable with ``get_model`` at the config's width (see
``models.json`` for each file's model, what it is and its training meta). A fixed block trained on the frozen
early backbone is exported as its own tensors only, with the backbone file it belongs to (``base``).
Exporting never replaces earlier files: a destination that holds anything is refused unless ``move_aside``
renames it first. The source's lock is held while it is read (a live run is not exported half-written) and a
destination a live run holds is never moved aside (:func:`tsb_aihw.utils.store.holding`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tsb_aihw.errors import ConfigError
from tsb_aihw.records import BlockArgs, ExportedModel, ModelIndex, StudyResult, read_record, training_meta
from tsb_aihw.utils.io import atomic_write_json, ensure_writable_dir, read_json
from tsb_aihw.utils.store import check_out_path, holding, read_checkpoint, rename_aside

#: checkpoint file -> exported name (methods' names, as in results.json); early budgets keep their epochs
EXPORT_NAMES = {"backbone_full": "full_noise_injection", "backbone_early": "backbone_early",
                "block_clean": "tsb_clean", "block_generic": "tsb_generic"}
#: study files worth committing (results and what a reader looks at); store.json and checkpoints stay in runs/
STUDY_FILES = ("results.json", "report.md", "methods.csv")
STUDY_SUFFIXES = (".csv", ".png")
HOW_TO_LOAD = ("model = get_model(**model); model.load_state_dict(torch.load(file)); a block file: model = "
               "insert_tsb(model, **tsb_block) and load_state_dict({**torch.load(base), **torch.load(file)})")


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
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise ConfigError(f"{source} is not a directory; pass a study's --out")
    check_out_path(dest, "--to")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"--to {dest} is a file, not a directory; pass a folder to export into (it is created)")
    with holding(source, "export it"):
        studies = study_dirs(source)
        if dest.exists() and any(dest.iterdir()):
            if not move_aside:
                raise ConfigError(f"{dest} is not empty; pass another destination, or add --move-aside to rename it "
                                  f"to {dest}.moved-<time> (nothing is deleted)")
            rename_aside(dest, "export")
        ensure_writable_dir(dest)  # a read-only or impossible destination is one line before anything is copied
        return [f for study in studies for f in _export_one(source, study, dest if len(studies) == 1 else
                                                            dest / study.name, len(studies))]


def _export_one(source: Path, study: Path, out: Path, n_studies: int) -> list[Path]:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    results = read_record(StudyResult, study / "results.json")
    cfg = results.config
    report = [source / "report.md"] if study != source and n_studies == 1 else []  # run's combined report
    for f in [*sorted(study.iterdir()), *[r for r in report if r.is_file()]]:
        if f.is_file() and (f.name in STUDY_FILES or f.suffix in STUDY_SUFFIXES):
            shutil.copy2(f, out / f.name)
            written.append(out / f.name)
    models: list[ExportedModel] = []
    early = f"backbone_early-{cfg['backbone']['early_epochs']}ep.pt"
    for ckpt in sorted((study / "checkpoints").glob("*.pt")):
        held = read_checkpoint(ckpt)  # weights, meta and key checked: a damaged checkpoint is one line
        state = held.state_dict
        has_block = any(k.startswith("tsb.") for k in state)
        name = f"{_export_name(ckpt.stem)}.pt"
        if has_block:  # a fixed block on the frozen early backbone: only the block's tensors are new
            state = {k: v for k, v in state.items() if k.startswith("tsb.")}
        torch.save(state, out / name)
        written.append(out / name)
        block = (BlockArgs(k=results.tsb.k, where=cfg["block"]["where"], residual=cfg["block"]["residual"],
                           bias=True if cfg["block"].get("bias") else None)
                 if has_block else None)
        models.append(ExportedModel(file=name, checkpoint=ckpt.name, model=results.model_args,
                                    tsb_block=block, base=early if has_block else None,
                                    meta=training_meta(held.meta, str(ckpt)), key=held.key))
    index = ModelIndex(how_to_load=HOW_TO_LOAD, dataset=results.dataset, models=models)
    atomic_write_json(out / "models.json", index.to_dict())
    written.append(out / "models.json")
    return written
