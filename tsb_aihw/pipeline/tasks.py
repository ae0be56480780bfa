"""What travels to a worker: a (method, chip) cell as a small picklable task, and where it is computed.

A task (a :class:`~tsb_aihw.parallel.cells.ChipTask`, like the drift and refresh studies' chips) names its config,
the output directory (checkpoints), the device it deploys on, the method and the chip;
:func:`~tsb_aihw.parallel.cells.run_chip_task` computes it anywhere. In the process that trained the models, the
live :class:`StudyContext` is reused (registered by the orchestrator); elsewhere it is rebuilt once per process
from the config and the checkpoints (never trained there).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Sequence

from tsb_aihw.devices import DevicePreset, load_preset
from tsb_aihw.evaluation.times import format_time, parse_times
from tsb_aihw.parallel.cells import ChipTask
from tsb_aihw.pipeline.config import BlockConfig, StudyConfig, keyed_tree, study_config_from_dict
from tsb_aihw.pipeline.deploy import CellResult, DeploySpec, deploy_cell
from tsb_aihw.pipeline.methods import MethodSpec
from tsb_aihw.pipeline.trained import StudyData, TrainedModels, load_study_data
from tsb_aihw.utils.io import json_fingerprint
from tsb_aihw.utils.seeding import deterministic_kernels
from tsb_aihw.utils.store import Checkpoints

CELL_VERSION = 3  # bump when a cell's computation changes, so stored cells are not mixed with new ones
# bump when only BN re-estimation changes: only the cells that run it (spec.bn_recalibration) are recomputed.
# 2: the re-estimation forwards on the chip's evaluation forward (fast path), not AIHWKit's.
BN_RECALIBRATION_VERSION = 2


class StudyContext:
    """One study's live state in a process: config, data, trained models and the presets it deploys on."""

    def __init__(self, cfg: StudyConfig, out: Path, progress: bool = True, can_train: bool = True,
                 models_from: Sequence[str | Path] = ()):
        deterministic_kernels()  # as training set it in the first run: a re-run that trains nothing matches it
        self.cfg = cfg
        self.out = Path(out)
        self.preset = load_preset(cfg.preset, overrides=cfg.preset_overrides)
        self.times = parse_times(cfg.times)
        self.labels = [format_time(t) for t in self.times]
        self.data: StudyData = load_study_data(cfg)
        self.models = TrainedModels(cfg, self.data, self.preset, Checkpoints(self.out / "checkpoints"),
                                    progress=progress, can_train=can_train, models_from=models_from)
        self._presets: dict[str, DevicePreset] = {}

    @property
    def key(self) -> Hashable:
        """What its cells find it under in this process (:meth:`ChipTask.context_key`)."""
        return CellTask.context_key(str(self.out.resolve()), self.cfg.to_dict())

    def deploy_preset(self, deploy: DeploySpec | None) -> DevicePreset:
        """The device a cell is programmed on (the config's preset unless the task names another)."""
        if deploy is None:
            return self.preset
        k = json_fingerprint([deploy.preset, deploy.overrides])
        if k not in self._presets:
            self._presets[k] = deploy.load()
        return self._presets[k]

    def chip_eval(self, preset: DevicePreset | None = None) -> dict[str, str]:
        """How chips on ``preset`` (None: the config's) are evaluated here: the fast-eval mode and the matrix
        product it resolves to on this machine (``auto`` never appears): what results record and keys carry."""
        from tsb_aihw.analog.fast_eval import fast_eval_mode, preset_product

        mode = fast_eval_mode(self.cfg.fast_eval)
        return {"mode": mode, "product": preset_product(self.cfg.fast_eval_product, preset or self.preset, mode,
                                                        self.cfg.device)}

    def cell_key(self, spec: MethodSpec, chip: int, preset: DevicePreset, block: BlockConfig | None = None) -> str:
        """A cell's full fingerprint: everything it depends on (config minus what only selects cells, the
        preset's content, the per-chip block's budget, the method and the chip)."""
        cfg = self.cfg if block is None else dataclasses.replace(self.cfg, block=block)
        c = keyed_tree(cfg)  # a new field at its neutral default keeps every key
        for k in ("chips", "methods", "selective"):
            c.pop(k, None)
        if "fast_eval_product" in c:  # keyed by what it resolves to here (auto: bf16 or fp32, the default's key)
            product = self.chip_eval(preset)["product"]
            c.pop("fast_eval_product")
            if product != "fp32":
                c["fast_eval_product"] = product
        # a cell depends on its own backbone's budget only, so budgets of the other backbone reuse it (frontier)
        backbone = c.pop("backbone", {})
        backbone.pop("full_epochs" if spec.backbone == "early" else "early_epochs", None)
        if backbone:
            c["backbone"] = backbone
        deps = {"config": c, "preset": preset.identity, "version": CELL_VERSION,
                "spec": [spec.backbone, spec.block, spec.verify, spec.selection, spec.bn_recalibration]}
        if spec.bn_recalibration:  # version 1 (AIHWKit's forward) had no entry; other cells keep their keys
            deps["bn_recalibration"] = BN_RECALIBRATION_VERSION
        return f"{spec.key}#{chip}@{json_fingerprint(deps)}"

    def task(self, spec: MethodSpec, chip: int, threads: int | None = None,
             deploy: DeploySpec | None = None) -> "CellTask":
        block = deploy.block_config(self.cfg.block) if deploy is not None and deploy.block else None
        return CellTask(key=self.cell_key(spec, chip, self.deploy_preset(deploy), block), config=self.cfg.to_dict(),
                        out=str(self.out.resolve()), spec=spec, chip=chip, deploy=deploy, threads=threads)


@dataclass(frozen=True, kw_only=True)
class CellTask(ChipTask):
    """One (method, chip) cell of a study or sweep: the study's output directory (checkpoints), the method and
    the device it deploys on."""

    out: str
    spec: MethodSpec
    deploy: DeploySpec | None = None  # None: the config's preset

    @property
    def where(self) -> str:
        return self.out

    def build_context(self) -> StudyContext:
        return StudyContext(study_config_from_dict(self.config, "cell task"), Path(self.out), progress=False,
                            can_train=False)

    def compute(self, ctx: StudyContext) -> CellResult:
        block = self.deploy.block_config(ctx.cfg.block) if self.deploy is not None else None
        return deploy_cell(self.spec, self.chip, ctx.models, ctx.deploy_preset(self.deploy), block=block)
