"""One simulated chip: (analog model, preset, study seed, chip index), with every random step seeded here.

AIHWKit draws programming, drift and read noise from torch's global generator, tile after tile. A
write-verify loop draws extra numbers for its re-programmed cells, so with one seed per chip the tiles after
a verified tile would see different noise for different methods. Seeding each tile from (chip seed, layer,
tile index), with layer names stripped of insertion-site wrappers, makes chip *i* the same chip for every
method and every command (``run``, ``sweep``, ``drift``, ``refresh``, ``monte_carlo``): the backbone of the
TSB model and the bare backbone get bit-identical one-shot noise. Each step's seed is
``derive_seed(chip_seed, step, ...)`` with the step names below; torch's global generator is left as it was.

Steps: programming (per tile), ``drift`` (per tile and time; a re-written block tile by write and age),
``read-back`` (per write), ``block-train`` (per write), ``block-write`` (per write), ``bn-recalibration``,
``adc-calibration``, ``per-chip`` (monte_carlo's hook), ``eval`` (per time: the periphery's output noise).
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from tsb_aihw.analog.readback import read_back
from tsb_aihw.analog.tiles import reset_drift_compensation
from tsb_aihw.models.counting import is_tsb_name
from tsb_aihw.utils.seeding import derive_seed

_WRAPPERS = {"wrapped", "inner", "module"}


def canonical_name(name: str) -> str:
    """Layer name without insertion-site wrappers: a backbone layer is the same chip location with or
    without a TSB inserted."""
    return ".".join(p for p in name.split(".") if p not in _WRAPPERS)


def named_analog_tiles(model: nn.Module) -> Iterator[tuple[str, int, nn.Module, nn.Module]]:
    """(canonical layer name, tile index, layer, tile) for every analog tile, in module order."""
    for name, layer in model.named_analog_layers():
        for j, tile in enumerate(layer.analog_tiles()):
            yield canonical_name(name), j, layer, tile


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Torch's global generator seeded for a block, restored afterwards (AIHWKit draws from it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@dataclass
class Chip:
    """Chip ``index`` of a study seeded ``seed``, holding ``model`` (an AIHWKit analog model) on ``preset``.

    The same (seed, index) on the same preset and model is the same chip, whichever command builds it.
    ``block_written_at`` / ``block_writes`` track the block tile's own clock after a re-write (refresh).
    """

    model: nn.Module
    preset: Any
    seed: int
    index: int
    block_written_at: float = 0.0
    block_writes: int = 0

    @property
    def chip_seed(self) -> int:
        return derive_seed(self.seed, "chip", self.index)

    def step_seed(self, *step: int | str) -> int:
        """The seed of one random step of this chip's life."""
        return derive_seed(self.chip_seed, *step)

    def rng(self, *step: int | str) -> contextlib.AbstractContextManager[None]:
        """Torch's global generator seeded for one step (restored afterwards)."""
        return seeded_rng(self.step_seed(*step))

    # -- physics ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _program_tiles(self, block_only: bool, *step: int | str) -> None:
        """Program tiles (all, or the block's only) each from ``derive_seed(chip_seed, *step, layer, tile)``;
        the backbone is programmed from its stored target, a block write from the weights just written."""
        with torch.random.fork_rng(devices=[]):
            for name, j, _layer, tile in named_analog_tiles(self.model):
                if block_only and not is_tsb_name(name):
                    continue
                torch.manual_seed(derive_seed(self.chip_seed, *step, name, j))
                tile.program_weights(from_reference=not block_only)
                reset_drift_compensation(tile)

    def program(self) -> str:
        """Program every tile as this chip; returns the backbone's digest.

        Tiles are programmed from their stored target (AIHWKit's reference, taken at the first programming),
        so drifted weights never become a target."""
        self.model.eval()
        self._program_tiles(False)
        self.block_written_at, self.block_writes = 0.0, 0
        return self.digest()

    @torch.no_grad()
    def drift(self, t: float) -> None:
        """Drift to chip time ``t`` after programming (read noise seeded by tile and time). t = 0 restores the
        programmed weights (no read noise, compensation 1). A block re-written at ``r`` drifts on its own clock,
        to ``t - r``."""
        age = t - self.block_written_at
        if age < 0:
            raise RuntimeError(f"chip time {t} is before the block write at {self.block_written_at}")
        with torch.random.fork_rng(devices=[]):
            for name, j, _layer, tile in named_analog_tiles(self.model):
                own_clock = bool(self.block_writes) and is_tsb_name(name)
                at, clock = (age, f"write{self.block_writes}") if own_clock else (t, None)
                if at == 0:  # as programmed: no drift, no read noise, drift-compensation factor 1
                    if getattr(tile, "programmed_weights", None) is not None:
                        tile.tile.set_weights(tile.programmed_weights)
                    reset_drift_compensation(tile)
                    continue
                keys = (name, j, "drift") + ((clock,) if clock else ()) + (repr(float(at)),)
                torch.manual_seed(derive_seed(self.chip_seed, *keys))
                tile.drift_weights(at)

    def read_back(self, t: float, n_reads: int, write: int = 0) -> dict[str, torch.Tensor]:
        """This chip's effective weights read at time ``t`` (``n_reads`` averaged) for block write ``write``."""
        with self.rng("read-back", write):
            return read_back(self.model, t=t, n_reads=n_reads)

    def write_block(self, weight: torch.Tensor, at: float = 0.0) -> None:
        """Write new block weights into the (write-verified) block tile at chip time ``at``; verify runs here."""
        from tsb_aihw.models import get_tsb

        get_tsb(self.model).conv.set_weights(weight)
        self.block_writes = self.block_writes + 1 if at > 0 else 0  # at 0: the normal TSB write (write 0)
        # a new target (AIHWKit's stale-reference pitfall: from the reference it would revert the block)
        self._program_tiles(True, "block-write", self.block_writes)
        self.block_written_at = at

    def calibrate_adc(self, loader: Any) -> Any:
        """Set the ADC ranges from calibration data if the preset asks for it (``adc_calibration.mode``); call
        after the last programming. Returns the :class:`~tsb_aihw.analog.adc_calibration.ADCCalibration` or None."""
        spec = getattr(self.preset, "adc_calibration", None)
        if spec is None or spec.mode == "none":
            return None
        from tsb_aihw.analog.adc_calibration import calibrate_adc

        with self.rng("adc-calibration"):
            return calibrate_adc(self.model, loader, percentile=spec.percentile, mode=spec.mode,
                                 max_images=spec.samples)

    # -- identity -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def digest(self) -> str:
        """Hash of the backbone tiles' current weights: equal digests = the same programmed chip."""
        h = hashlib.sha256()
        for name, j, _layer, tile in named_analog_tiles(self.model):
            if is_tsb_name(name):
                continue
            h.update(f"{name}#{j}".encode())
            h.update(torch.as_tensor(tile.tile.get_weights()).contiguous().reshape(-1).numpy().tobytes())
        return h.hexdigest()[:16]
