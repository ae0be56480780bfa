"""Several studies into one output directory (``tsb-aihw run``, ``tsb-aihw demo``): one folder per preset,
named by the preset's identity, plus the combined results.json, methods.csv and report.md."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.pipeline.adopt import check_sources
from tsb_aihw.pipeline.config import StudyConfig
from tsb_aihw.pipeline.report import method_rows, write_report
from tsb_aihw.pipeline.study import run_study, study_identity
from tsb_aihw.records import StudiesResult
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json
from tsb_aihw.utils.provenance import provenance
from tsb_aihw.utils.store import ResultStore


def study_folders(configs: list[StudyConfig]) -> list[str]:
    """Each study's folder: its preset's name plus content fingerprint (never the file stem)."""
    names = [load_preset(c.preset, overrides=c.preset_overrides).folder_name for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"two studies deploy on the same device preset ({names}); give each preset once")
    return names


def run_studies(out: str | Path, configs: list[StudyConfig], command: str, progress: bool = True,
                move_aside: bool = False, models_from: Sequence[str | Path] = ()) -> StudiesResult:
    """Run every study into ``out/<preset folder>/`` and write the combined results, CSV and report into ``out``
    (``models_from``: see ``run_study``)."""
    for cfg in configs:  # every config is checked before anything is trained
        cfg.validate()
    folders = study_folders(configs)
    check_sources(models_from)
    store = ResultStore(out, "studies", {"studies": [study_identity(c) for c in configs]}, move_aside=move_aside)
    studies = [run_study(cfg, store.out / name, progress=progress, models_from=models_from)
               for cfg, name in zip(configs, folders)]
    # plots of each study are referenced from the top-level report
    studies = [dataclasses.replace(r, plots=[f"{name}/{p}" for p in r.plots]) for r, name in zip(studies, folders)]
    combined = StudiesResult(command=command, provenance=provenance(), folders=folders,
                             studies=dict(zip(folders, studies)),
                             claims={name: r.claims for name, r in zip(folders, studies)})
    atomic_write_json(store.out / "results.json", combined.to_dict())
    atomic_write_csv(store.out / "methods.csv", [row for r in studies for row in method_rows(r)])
    write_report(studies, store.out, command)
    return combined
