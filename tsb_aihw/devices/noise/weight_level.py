"""Weight-level noise models: noise is defined on the weight directly, not through a conductance converter.

AIHWKit's tiles call ``noise_model.apply_programming_noise(W)`` with the tile's (normalised) reference weights
and ``apply_drift_noise(W_prog, params, t)`` later; overriding those two hooks puts a weight-level model behind
a real analog tile, next to AIHWKit's conductance-level PCM and ReRAM models.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor

from tsb_aihw.devices.schema import nvcim_std_factor


class WeightLevelNoiseModel(BaseNoiseModel):
    """Base of models defined on weights; time-independent (no drift, no read noise)."""

    #: devices that store one weight (for the cost model); None = not fixed by the model.
    devices_per_weight: Optional[int] = None

    def __init__(self) -> None:
        super().__init__()  # keeps a (unused) g_converter so code that inspects it does not break

    def programming_std(self, weights: Tensor) -> float:
        """Std of the programming error for these target weights (same for every element)."""
        raise NotImplementedError

    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> Tuple[Tensor, List[Optional[Tensor]]]:
        std = self.programming_std(weights)
        if std == 0.0:
            return weights.clone(), []
        return weights + std * torch.randn_like(weights), []

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: List[Optional[Tensor]],
                          t_inference: float) -> Tensor:
        """No drift and no read noise: the programmed weights stay as they are."""
        return weights.clone()

    @torch.no_grad()
    def apply_noise(self, weights: Tensor, t_inference: float) -> Tensor:
        return self.apply_programming_noise(weights)[0]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def _key(self) -> tuple:
        return ()

    def __str__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self._items())})"

    __repr__ = __str__

    def _items(self) -> list[tuple[str, object]]:
        return []


class NVCIMGaussianNoiseModel(WeightLevelNoiseModel):
    r"""Device variation of the TSB authors' group (NF_Training, Qin et al.), drawn once per chip.

    An 8-bit weight is bit-sliced over four 2-bit devices (significances :math:`4^0..4^3`); every device gets
    independent Gaussian noise of std :math:`\sigma` relative to its top level. Per weight:

    .. math:: W_\text{prog} = W + \Delta W,\quad \Delta W \sim
        \mathcal N\!\left(0, \left(k\,\sigma \max|W_\text{layer}|\right)^2\right),\quad
        k = \sqrt{\textstyle\sum_i 16^i} / \textstyle\sum_i 4^i = \sqrt{4369}/85 \approx 0.7776

    ``max|W|`` is the abs-max of the weights this model is applied to: per layer when the tile is not split
    (``max_input_size = max_output_size = 0``) and weight scaling is not column-wise. No drift, no read
    noise, no quantisation (the bits only set the scale), as in the group's code.
    """

    def __init__(self, sigma: float = 0.35, weight_bits: int = 8, device_bits: int = 2) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if weight_bits % device_bits:
            raise ValueError(f"weight_bits={weight_bits} must be a multiple of device_bits={device_bits}")
        self.sigma = float(sigma)
        self.weight_bits = int(weight_bits)
        self.device_bits = int(device_bits)
        self.devices_per_weight = weight_bits // device_bits
        self.std_factor = nvcim_std_factor(weight_bits, device_bits)

    def programming_std(self, weights: Tensor) -> float:
        return self.std_factor * self.sigma * float(weights.abs().max()) if weights.numel() else 0.0

    def _key(self) -> tuple:
        return (self.sigma, self.weight_bits, self.device_bits)

    def _items(self) -> list[tuple[str, object]]:
        return [("sigma", self.sigma), ("weight_bits", self.weight_bits), ("device_bits", self.device_bits)]


class IdealNoiseModel(WeightLevelNoiseModel):
    """Exact programming, no drift, no read noise: the programmed weights equal the targets bit for bit."""

    def programming_std(self, weights: Tensor) -> float:
        return 0.0
