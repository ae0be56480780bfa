"""Weight-to-conductance mappings AIHWKit lacks: a differential (g+/g-) pair for single-window devices (RRAM).

AIHWKit's ``ReRamCMONoiseModel`` maps each weight to ONE device, w_min -> g_min, w_max -> g_max. The model's
relaxation shift (-0.089 ln t uS, the same for every device) then moves every weight by the same amount: an
offset that a global drift-compensation gain cannot remove (LeNet-3/MNIST: 93.9 % -> 41.7 % after a year).
Real RRAM arrays read a weight as the difference of two cells (e.g. NeuRRAM, Wan et al., Nature 608, 504
(2022), stores each weight as the differential conductance of an RRAM pair), which cancels any shift
common to both cells.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from aihwkit.inference.converter.base import BaseConductanceConverter
from torch import Tensor


class DifferentialConductanceConverter(BaseConductanceConverter):
    r"""Two devices per weight, complementary around the window centre g_c = (g_min + g_max) / 2.

    :math:`g_\pm = g_c \pm w \cdot (g_{max} - g_{min}) / (2 \max|W|)` and :math:`w = (g_+ - g_-) \max|W| /
    (g_{max} - g_{min})`. Why complementary rather than "one device at g_min": both devices sit inside the
    window, so a shift common to both (CMO relaxation) cancels in g+ - g- and neither is clipped at the
    model's g_min floor (only the abs-max weight puts one device at g_min). The pair's noise (sqrt(2) of one
    device) is spread over twice the single-device weight span.
    """

    def __init__(self, g_max: float = 88.199997, g_min: float = 9.0) -> None:
        if not 0.0 <= g_min < g_max:
            raise ValueError(f"need 0 <= g_min < g_max, got g_min={g_min}, g_max={g_max}")
        self.g_max = float(g_max)
        self.g_min = float(g_min)

    def __str__(self) -> str:
        return f"{type(self).__name__}(g_max={self.g_max:.2f}, g_min={self.g_min:.2f})"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.g_max, self.g_min) == (other.g_max, other.g_min)

    __hash__ = None  # type: ignore[assignment]

    @torch.no_grad()
    def convert_to_conductances(self, weights: Tensor) -> Tuple[List[Tensor], Dict]:
        abs_max = weights.abs().max().clamp(min=1e-12)
        scale_ratio = (self.g_max - self.g_min) / abs_max  # uS per weight unit, of g+ - g-
        centre = 0.5 * (self.g_max + self.g_min)
        half = 0.5 * weights * scale_ratio
        g_plus = (centre + half).clamp(self.g_min, self.g_max)
        g_minus = (centre - half).clamp(self.g_min, self.g_max)
        return [g_plus, g_minus], {"scale_ratio": scale_ratio}

    @torch.no_grad()
    def convert_back_to_weights(self, conductances: List[Tensor], params: Dict) -> Tensor:
        if len(conductances) != 2:
            raise ValueError(f"a differential pair needs two conductance tensors, got {len(conductances)}")
        return (conductances[0] - conductances[1]) / params["scale_ratio"]
