"""Drift compensation with a read-out a chip can measure well: many rows driven at once, not one-hot rows.

AIHWKit's ``GlobalDriftCompensation`` reads the tile with one-hot input vectors (``eye``): each output is a
single weight, |w| <= 1 in normalised units, i.e. at most 1/out_bound of the ADC range (12.7 steps of 127
at 8 bits with out_bound 10; 1.5 steps at 4 bits). Its mean |output| is then dominated by ADC rounding, and
the compensation factor alpha comes out biased and noisy: on LeNet-3/PCM at 1 d and a 5-bit ADC alpha was
1.7-2.6 where the drift factor is ~1.5, and 18-34 after an ADC range calibration (docs/devices.md section 5).
A chip's calibration read-out drives many rows at once, so that its outputs lie well inside the ADC range;
here a fixed set of sparse random vectors (each drives ``rows_per_vector`` random rows with +-1; seeded, the
same for the baseline and every later read-out). Not all rows: with 256 rows at +-1 the outputs (sd ~16 rms
|w| ~ 4-5) would clip at out_bound 10 and bias alpha by ~3 %; 32 rows give sd ~1.6, far from the bound.
"""
from __future__ import annotations

import torch
from aihwkit.inference.compensation.drift import GlobalDriftCompensation
from torch import Tensor


class RandomReadoutGlobalDriftCompensation(GlobalDriftCompensation):
    """Global drift compensation (one alpha per tile, Joshi et al. 2020) read out with random +-1 vectors."""

    def __init__(self, n_vectors: int = 256, rows_per_vector: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.n_vectors = int(n_vectors)
        self.rows_per_vector = int(rows_per_vector)
        self.seed = int(seed)

    @torch.no_grad()
    def get_readout_tensor(self, in_size: int) -> Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        signs = torch.randint(0, 2, (self.n_vectors, in_size), generator=gen).float().mul_(2.0).sub_(1.0)
        m = min(in_size, self.rows_per_vector)
        rank = torch.rand(self.n_vectors, in_size, generator=gen).argsort(dim=1).argsort(dim=1)
        return signs * (rank < m).float()  # m active rows per vector

    def _key(self) -> tuple:
        return (self.n_vectors, self.rows_per_vector, self.seed)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return (f"{type(self).__name__}(n_vectors={self.n_vectors}, rows_per_vector={self.rows_per_vector}, "
                f"seed={self.seed})")

    __repr__ = __str__
