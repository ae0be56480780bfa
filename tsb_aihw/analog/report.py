"""``weight_report``: how many weights each layer has, which sit on tiles, and which are write-verified.

``verified_fraction`` = verified weights / backbone weights, the SWIM convention (docs/notes/tsb-method.md §4): the
numerator counts every write-verified weight (the TSB's included), the denominator every conv/linear
weight outside the TSB (analog or digital). So ``verify="all"`` gives 1 + k²/backbone, not 1.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import torch
from torch import Tensor, nn

from tsb_aihw.analog.tiles import not_convertible_reason, tile_grid, tile_verify_mask
from tsb_aihw.errors import ConfigError
from tsb_aihw.models.counting import is_analog_layer, is_tsb_name, layer_weight_count, weight_layers
from tsb_aihw.utils.io import JsonObject


@dataclass
class LayerRow:
    name: str
    kind: str  # "conv", "linear" or "tsb"
    analog: bool  # on tiles (analog model) / would be mapped to tiles by to_analog (digital model)
    weights: int
    verified: int
    tiles: int = 0


@dataclass
class WeightReport:
    rows: list[LayerRow]
    backbone_weights: int
    tsb_weights: int
    verified_weights: int
    analog_weights: int
    source: str  # where the verified counts come from: "planned", "tiles" or "recorded"
    notes: list[str] = field(default_factory=list)

    @property
    def verified_fraction(self) -> float:
        return self.verified_weights / self.backbone_weights if self.backbone_weights else 0.0

    def to_dict(self) -> JsonObject:
        d = asdict(self)
        d["verified_fraction"] = self.verified_fraction
        return d

    def format(self) -> str:
        w = max([len(r.name) for r in self.rows] + [5])
        lines = [f"{'layer':<{w}}  {'kind':<6} {'where':<7} {'weights':>11} {'verified':>10}"]
        for r in self.rows:
            where = "analog" if r.analog else "digital"
            lines.append(f"{r.name:<{w}}  {r.kind:<6} {where:<7} {r.weights:>11,} {r.verified:>10,}")
        lines.append(
            f"backbone {self.backbone_weights:,} weights, TSB {self.tsb_weights:,}, "
            f"on tiles {self.analog_weights:,}; "
            f"verified {self.verified_weights:,} = {self.verified_fraction:.4%} of the backbone ({self.source})"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _kind(name: str, module: nn.Module) -> str:
    if is_tsb_name(name):
        return "tsb"
    return "conv" if hasattr(module, "kernel_size") else "linear"


def _planned(name: str, module: nn.Module, verify: str | Mapping[str, Tensor]) -> int:
    if not isinstance(verify, str):
        mask = verify.get(name)
        return int(torch.as_tensor(mask).sum()) if mask is not None else 0
    if verify == "all" or (verify == "tsb" and is_tsb_name(name)):
        return layer_weight_count(module)
    if verify in ("tsb", "none"):
        return 0
    raise ConfigError(f"verify={verify!r} is unknown; use 'tsb', 'none', 'all' or {{layer name: bool mask}}")


def weight_report(model: nn.Module, verify: str | Mapping[str, Tensor] = "tsb") -> WeightReport:
    """Per-layer weight accounting. Digital model: what ``to_analog(model, preset, verify)`` would verify.

    Analog model: the verified cells read from the tiles (``tsb_aihw.devices.get_verify_mask``, else the
    config default held by the write-verify noise model) or, for tiles that cannot report it, what
    ``to_analog`` recorded (``source`` says which); ``verify`` is then ignored.
    """
    layers = weight_layers(model)
    analog_model = any(is_analog_layer(m) for _, m in layers)
    recorded = getattr(model, "tsb_verified_weights", None) or {}
    sources = set()
    rows = []
    for name, m in layers:
        n = layer_weight_count(m)
        on_tiles = is_analog_layer(m) if analog_model else not_convertible_reason(m) is None
        verified, n_tiles = 0, 0
        if not analog_model:
            verified = _planned(name, m, verify) if on_tiles else 0
            sources.add("planned")
        elif on_tiles:
            grid = tile_grid(m)
            n_tiles = len(grid)
            masks = [tile_verify_mask(p.tile) for p in grid]
            if all(mk is not None for mk in masks):
                verified = sum(int(mk.sum()) for mk in masks if mk is not None)
                sources.add("tiles")
            elif name in recorded:
                verified = int(recorded[name])
                sources.add("recorded")
            else:
                raise ConfigError(f"cannot tell which cells of {name!r} are verified: its tiles have no "
                                  "write-verify noise model and to_analog recorded nothing; convert with "
                                  "tsb_aihw.analog.to_analog")
        rows.append(LayerRow(name, _kind(name, m), on_tiles, n, verified, n_tiles))
    source = "+".join(sorted(sources)) or "planned"
    backbone = sum(r.weights for r in rows if r.kind != "tsb")
    notes = [f"{d['name']} digital: {d['reason']}" for d in getattr(model, "tsb_digital_layers", [])]
    if not analog_model:
        notes += [f"{r.name} would stay digital: {not_convertible_reason(m)}"
                  for r, (_, m) in zip(rows, layers) if not r.analog]
    return WeightReport(
        rows=rows,
        backbone_weights=backbone,
        tsb_weights=sum(r.weights for r in rows if r.kind == "tsb"),
        verified_weights=sum(r.verified for r in rows),
        analog_weights=sum(r.weights for r in rows if r.analog),
        source=source,
        notes=notes,
    )
