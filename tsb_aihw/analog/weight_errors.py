"""Per-weight programming errors of an analog model: what the chip holds vs what it was asked to hold.

Why: accuracy says *that* a chip is off; the error distribution says *why* (programming spread, drift, the
effect of write-verify on the verified cells). Errors are expressed relative to each layer's max|W| (the
target's abs-max), the same unit as the NVCIM sigma and the presets' ``training_noise_std``, so layers and
devices are comparable.

- target: each tile's programming reference (AIHWKit's ``reference_combined_weights``, i.e. the weights the
  last programming aimed at; a re-written TSB block has its new weights as target) times the tile's
  digital output scales, stitched over the tile grid into the layer matrix.
- programmed (``t=0``): ``tile.programmed_weights`` x scales, no read noise, drift-compensation factor 1.
- drifted (``t>0``): :func:`tsb_aihw.analog.read_back` at ``t`` (drift + read noise drawn from the
  programmed state, including the drift-compensation alpha as the forward uses it); the tiles' state is
  restored afterwards, so measuring errors does not disturb a running experiment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from tsb_aihw.analog.readback import read_back
from tsb_aihw.analog.tiles import tile_grid, tile_verify_mask
from tsb_aihw.errors import ConfigError
from tsb_aihw.models.counting import is_tsb_name
from tsb_aihw.utils.io import JsonObject

SPLITS = (None, "group", "verified", "group+verified")


@dataclass
class LayerErrors:
    """Relative errors of one layer: ``(held - target) / max|target|``, flattened in tile-matrix order."""

    name: str
    group: str  # "backbone" or "tsb"
    errors: np.ndarray
    verified: np.ndarray | None  # bool per weight (None: the tiles cannot say)
    abs_max: float  # max|target| of the layer, the unit of ``errors``


@dataclass
class WeightErrors:
    """Per-weight errors of a whole analog model at one time after programming."""

    t: float
    layers: list[LayerErrors] = field(default_factory=list)

    def split(self, by: str | None = "group") -> dict[str, np.ndarray]:
        """Errors pooled by ``by``: None (all weights), "group" (backbone / tsb), "verified" (verified /
        one-shot cells) or "group+verified". Empty groups are left out."""
        if by not in SPLITS:
            raise ConfigError(f"split by {by!r} is unknown; use one of {SPLITS}")
        if by in ("verified", "group+verified") and any(la.verified is None for la in self.layers):
            missing = [la.name for la in self.layers if la.verified is None]
            raise ConfigError(f"cannot split by verified cells: tiles of {missing} have no write-verify noise "
                              "model; convert with tsb_aihw.analog.to_analog, or split by 'group'")
        pools: dict[str, list[np.ndarray]] = {}
        for la in self.layers:
            if by is None:
                pools.setdefault("all weights", []).append(la.errors)
            elif by == "group":
                pools.setdefault(la.group, []).append(la.errors)
            else:
                for flag, label in ((True, "verified"), (False, "one-shot")):
                    sel = la.errors[la.verified == flag]
                    key = label if by == "verified" else f"{la.group} ({label})"
                    if sel.size:
                        pools.setdefault(key, []).append(sel)
        return {k: np.concatenate(v) for k, v in pools.items() if sum(a.size for a in v)}

    def summary(self, by: str | None = "group") -> dict[str, dict[str, float]]:
        """Per pool: n, mean, std, rms, mean |e| and the 99th percentile of |e| (all relative to max|W|)."""
        out = {}
        for key, e in self.split(by).items():
            a = np.abs(e)
            out[key] = {"n": int(e.size), "mean": float(e.mean()), "std": float(e.std()),
                        "rms": float(np.sqrt((e ** 2).mean())), "mean_abs": float(a.mean()),
                        "p99_abs": float(np.quantile(a, 0.99))}
        return out

    def to_dict(self) -> JsonObject:
        return {"t": self.t, "layers": {la.name: {"group": la.group, "abs_max": la.abs_max, "n": int(la.errors.size)}
                                        for la in self.layers},
                "summary": self.summary("group")}


def _target(tile: nn.Module) -> Tensor:
    ref = getattr(tile, "reference_combined_weights", None)
    if ref is None or getattr(tile, "programmed_weights", None) is None:
        raise ConfigError("weight_errors needs programmed tiles; call analog_model.program_analog_weights() "
                          "(or tsb_aihw.pipeline.chip.program_chip) first")
    return _scaled(tile, ref)


def _scaled(tile: nn.Module, weights: Tensor) -> Tensor:
    w = torch.as_tensor(weights).detach().cpu().clone()
    scales = tile.get_scales()
    if scales is not None:
        w = w * scales.detach().cpu().view(-1, 1)
    return w


@torch.no_grad()
def weight_errors(analog_model: nn.Module, t: float = 0.0, seed: int | None = None, n_reads: int = 1) -> WeightErrors:
    """Per-weight errors of every analog layer ``t`` seconds after programming (see the module docstring).

    ``seed`` seeds the drift/read-noise draw of ``t > 0`` (torch's global RNG is left as it was).
    """
    if t < 0:
        raise ConfigError(f"t is seconds after programming and must be >= 0, got {t}")
    if analog_model.training:
        raise ConfigError("weight_errors needs eval mode (drift compensation applies in eval only); call .eval()")
    layers = list(analog_model.named_analog_layers())
    if not layers:
        raise ConfigError("the model has no analog layers; convert it with tsb_aihw.analog.to_analog first")
    held: dict[str, Tensor] | None = None
    if t > 0:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            held = read_back(analog_model, t=t, n_reads=n_reads)
    out = WeightErrors(t=float(t))
    for name, layer in layers:
        target = torch.zeros(layer.out_features, layer.in_features)
        now = torch.zeros_like(target)
        verified: Tensor | None = torch.zeros_like(target, dtype=torch.bool)
        for piece in tile_grid(layer):
            target[piece.rows, piece.cols] = _target(piece.tile)
            if held is None:
                now[piece.rows, piece.cols] = _scaled(piece.tile, piece.tile.programmed_weights)
            mask = tile_verify_mask(piece.tile)
            if mask is None or verified is None:
                verified = None
            else:
                verified[piece.rows, piece.cols] = mask.cpu()
        if held is not None:
            now = held[name].reshape(layer.out_features, layer.in_features)
        scale = float(target.abs().max())
        if scale == 0:
            raise ConfigError(f"layer {name!r} has an all-zero target; errors relative to max|W| are undefined "
                              "(was a zero-initialised block programmed before training?)")
        group = "tsb" if is_tsb_name(name) else "backbone"
        out.layers.append(LayerErrors(name, group, ((now - target) / scale).reshape(-1).numpy(),
                                      None if verified is None else verified.reshape(-1).numpy(), scale))
    return out
