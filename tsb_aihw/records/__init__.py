"""Typed results: what studies, sweeps, drift, refresh and frontier runs produce, as frozen dataclasses.

Results cross module boundaries as these records and become plain mappings only when written
(:meth:`Record.to_dict`); every file read back is rebuilt through the one config schema
(:func:`tsb_aihw.utils.schema.build`), so a damaged or hand-edited file is one line naming the file, the key and
what it holds, never a ``KeyError`` far away. Their keys are exactly the JSON keys the files have always had.
"""
from tsb_aihw.records.base import DatasetRecord, PresetRecord, Record, RunHeader, load_record, read_record
from tsb_aihw.records.claims import ClaimsByDefinition, ClaimsFile, DefinitionClaim, SpeedupUnits
from tsb_aihw.records.drift import DriftCell, DriftPresetResult, DriftResult, ModelSource
from tsb_aihw.records.frontier import FrontierPoint, FrontierResult
from tsb_aihw.records.models import BlockArgs, ExportedModel, ModelArgs, ModelIndex
from tsb_aihw.records.refresh import RefreshArm, RefreshCell, RefreshCost, RefreshResult, RefreshWrite
from tsb_aihw.records.study import FrontierStudy, MethodResult, StudiesResult, StudyResult, TsbRecord
from tsb_aihw.records.sweep import SweepPoint, SweepRecord
from tsb_aihw.records.training import TrainingMeta, training_meta

__all__ = [
    "BlockArgs", "ClaimsByDefinition", "ClaimsFile", "DatasetRecord", "DefinitionClaim", "DriftCell",
    "DriftPresetResult", "DriftResult", "ExportedModel", "FrontierPoint", "FrontierResult", "FrontierStudy",
    "MethodResult", "ModelArgs", "ModelIndex", "ModelSource", "PresetRecord", "Record", "RefreshArm", "RefreshCell",
    "RefreshCost", "RefreshResult", "RefreshWrite", "RunHeader", "SpeedupUnits", "StudiesResult", "StudyResult",
    "SweepPoint", "SweepRecord", "TrainingMeta", "TsbRecord", "load_record", "read_record", "training_meta",
]
