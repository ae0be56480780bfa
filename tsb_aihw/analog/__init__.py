"""Conversion to AIHWKit analog layers with per-layer verify, weight accounting and read-back."""
from tsb_aihw.analog.adc_calibration import ADCCalibration, TileBound, calibrate_adc
from tsb_aihw.analog.convert import to_analog
from tsb_aihw.analog.cost import CostConstants, InferenceCost, LayerCost, inference_cost
from tsb_aihw.analog.fast_eval import fast_forward, set_fast_eval
from tsb_aihw.analog.readback import load_read_back, read_back
from tsb_aihw.analog.report import LayerRow, WeightReport, weight_report
from tsb_aihw.analog.tiles import tile_grid
from tsb_aihw.analog.weight_errors import WeightErrors, weight_errors

__all__ = ["to_analog", "weight_report", "WeightReport", "LayerRow", "read_back", "load_read_back", "tile_grid",
           "weight_errors", "WeightErrors", "fast_forward", "set_fast_eval", "calibrate_adc", "ADCCalibration",
           "TileBound", "inference_cost", "InferenceCost", "LayerCost", "CostConstants"]
