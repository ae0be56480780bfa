"""``to_analog``: AIHWKit conversion with a write-verify config per layer (the TSB verified, the rest one-shot)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

import torch
from torch import Tensor, nn

from tsb_aihw.analog.tiles import mask_to_matrix, not_convertible_reason, tile_grid
from tsb_aihw.errors import ConfigError
from tsb_aihw.models.counting import is_analog_layer, is_tsb_name, weight_layers
from tsb_aihw.models.insertion import SITES_NAME, bind_sites

if TYPE_CHECKING:  # AIHWKit ships no type information: mypy reads it as Any
    from aihwkit.nn.modules.base import AnalogLayerBase

log = logging.getLogger(__name__)

VERIFY_MODES = ("tsb", "none", "all")


def _check_masks(
    masks: Mapping[str, Tensor], layers: dict[str, nn.Module], digital: dict[str, str]
) -> dict[str, Tensor]:
    out = {}
    for name, mask in masks.items():
        if name not in layers:
            raise ConfigError(
                f"verify mask for {name!r}: no conv/linear layer of that name; mask keys are digital module names "
                f"from model.named_modules(), e.g. {list(layers)[:6]}"
            )
        if name in digital:
            raise ConfigError(f"verify mask for {name!r}, but that layer stays digital ({digital[name]}); drop it")
        mask = torch.as_tensor(mask)
        shape = tuple(cast(Tensor, layers[name].weight).shape)
        if mask.dtype != torch.bool or tuple(mask.shape) != shape:
            raise ConfigError(
                f"verify mask for {name!r} must be a bool tensor of the layer's weight shape {shape}, "
                f"got {mask.dtype} {tuple(mask.shape)}"
            )
        out[name] = mask.cpu()
    return out


def _check_finite(model: nn.Module) -> None:
    """NaN/inf weights would be programmed as saturated conductances and give silent chance accuracy."""
    bad = [n for n, t in list(model.named_parameters()) + list(model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        shown = ", ".join(bad[:8]) + (f", ... ({len(bad)} in all)" if len(bad) > 8 else "")
        raise ConfigError(f"to_analog: the model holds NaN/inf values in {shown}; its training diverged or the "
                          "checkpoint is damaged: retrain (e.g. with a lower learning rate) or load another "
                          "checkpoint")


def set_layer_mask(layer: AnalogLayerBase, mask: Tensor) -> None:
    """Split a digital-shaped mask over the layer's tile grid and set it on every tile (devices contract)."""
    from tsb_aihw.devices import set_verify_mask  # lazy: devices pulls in AIHWKit's noise models

    matrix = mask_to_matrix(mask, layer.out_features)
    for piece in tile_grid(layer):
        set_verify_mask(piece.tile, matrix[piece.rows, piece.cols].contiguous())


def to_analog(
    model: nn.Module,
    preset: Any,
    verify: str | Mapping[str, Tensor] = "tsb",
    digital: Sequence[str] = (),
) -> nn.Module:
    """Copy ``model`` into an AIHWKit analog model (root ``AnalogWrapper``), in eval mode.

    Each conv/linear gets ``preset.rpu_config(verified=...)``: ``verify="tsb"`` verifies only the shared block
    (``tsb.conv``), ``"all"`` every layer, ``"none"`` none; a dict ``{digital layer name: bool mask of its
    weight shape}`` verifies exactly the masked weights (split to tiles with ``set_verify_mask``) and no
    others. Layers AIHWKit cannot map (grouped/depthwise convs, subclasses) and names in ``digital`` stay
    digital, are logged, and listed in ``analog_model.tsb_digital_layers``. The shared block stays one tile
    (array) that every site calls (``bind_sites`` re-attaches them after the copy).
    """
    from aihwkit.nn.conversion import convert_to_analog

    if not callable(getattr(preset, "rpu_config", None)):
        raise ConfigError(f"preset must provide rpu_config(verified: bool) (use tsb_aihw.devices.load_preset), "
                          f"got {type(preset).__name__}")
    layers = dict(weight_layers(model))
    if any(is_analog_layer(m) for m in layers.values()):
        raise ConfigError("to_analog needs a digital model, but it already has analog layers; "
                          "pass the digital one")
    _check_finite(model)
    unknown = [n for n in digital if n not in layers]
    if unknown:
        raise ConfigError(f"digital={unknown}: no conv/linear layers of those names; e.g. {list(layers)[:6]}")

    kept_digital = {n: "requested (digital=...)" for n in digital}
    for name, module in layers.items():
        reason = not_convertible_reason(module)
        if reason and name not in kept_digital:
            kept_digital[name] = reason
    has_tsb = hasattr(model, "tsb")
    masks: dict[str, Tensor] = {}
    if isinstance(verify, str):
        if verify not in VERIFY_MODES:
            raise ConfigError(f"verify={verify!r} is unknown; use 'tsb', 'none', 'all' "
                              "or {layer name: bool mask}")
        if verify == "tsb" and not has_tsb:
            raise ConfigError("verify='tsb' needs a model with a shared block; call insert_tsb(model) first, "
                              "or use verify='none'/'all'")
        if verify == "tsb" and any(is_tsb_name(n) for n in kept_digital):
            raise ConfigError("verify='tsb' but the shared block is kept digital; drop it from digital=...")
        wanted = {n for n in layers if verify == "all" or (verify == "tsb" and is_tsb_name(n))}
        verified = wanted - set(kept_digital)
    elif isinstance(verify, Mapping):
        masks = _check_masks(verify, layers, kept_digital)
        verified = {n for n, m in masks.items() if bool(m.any())}
    else:
        raise ConfigError(f"verify must be 'tsb', 'none', 'all' or a dict of masks, got {type(verify).__name__}")

    def rpu_for(name: str, module: nn.Module, rpu: Any) -> Any:
        if name in layers:
            return preset.rpu_config(verified=name in verified)
        return rpu  # containers: their config is not used

    analog = convert_to_analog(
        model, preset.rpu_config(verified=False), specific_rpu_config_fun=rpu_for,
        exclude_modules=list(kept_digital), inplace=False,
    )
    if has_tsb and hasattr(analog, SITES_NAME):
        bind_sites(analog)
    analog.eval()

    analog_layers = dict(analog.named_modules())
    for name, mask in masks.items():
        set_layer_mask(analog_layers[name], mask)
    counts = {}
    for name, module in layers.items():
        if name in kept_digital:
            continue
        if name in masks:
            counts[name] = int(masks[name].sum())
        else:
            counts[name] = module.weight.numel() if name in verified else 0
    analog.tsb_verify = verify if isinstance(verify, str) else "mask"
    analog.tsb_verified_weights = counts
    analog.tsb_digital_layers = [{"name": n, "reason": r} for n, r in kept_digital.items()]
    if kept_digital:
        log.warning("to_analog: %d layer(s) stay digital (analog_model.tsb_digital_layers): %s", len(kept_digital),
                    "; ".join(f"{n}: {r}" for n, r in kept_digital.items()))
    missed = [n for n in counts if not is_analog_layer(analog_layers[n])]
    if missed:
        raise ConfigError(f"AIHWKit left {missed} digital without reporting why; "
                          "add them to digital=... explicitly")
    return analog
