"""Reviewer baselines: SWIM-style selective write-verify masks and per-chip BN recalibration."""
from tsb_aihw.baselines.bn_recalibration import recalibrate_bn
from tsb_aihw.baselines.selective_verify import selection_masks

__all__ = ["recalibrate_bn", "selection_masks"]
