"""``insert_tsb``: add the one shared block to any CNN, plus the sites that call it (see sites.py)."""
from __future__ import annotations

import logging
import math
import warnings
from typing import Sequence

from torch import nn

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.models.counting import TSB_NAME, backbone_weight_count
from tsb_aihw.models.sites import Site, find_sites, parse_where, repeated_layers
from tsb_aihw.models.tsb import TinySharedBlock, TSBSite, block_weight_count

log = logging.getLogger(__name__)

SITES_NAME = "tsb_sites"
#: how ``insert_tsb`` may choose k from the budget (docs/design.md, "Choosing k automatically")
K_RULES = ("auto", "budget")
# plain-data attributes go through setattr: torch types Module.__setattr__ values as Tensor | Module
SKIPPED_NAME = "tsb_skipped_sites"
CONFIG_NAME = "tsb_config"


def get_tsb(model: nn.Module) -> TinySharedBlock:
    """The model's shared block (``model.tsb``), or a clear error if ``insert_tsb`` was never called."""
    block = getattr(model, TSB_NAME, None)
    if not isinstance(block, TinySharedBlock):
        raise TSBError("the model has no Tiny Shared Block (model.tsb); call insert_tsb(model) first")
    return block


def _is_tsb_hook(fn: object) -> bool:
    return isinstance(getattr(fn, "__self__", None), TSBSite)


def _remove_tsb_hooks(module: nn.Module) -> None:
    for hid, fn in list(module._forward_hooks.items()):
        if _is_tsb_hook(fn):
            for hooks in (module._forward_hooks, module._forward_hooks_with_kwargs,
                          module._forward_hooks_always_called):
                hooks.pop(hid, None)


def bind_sites(model: nn.Module) -> nn.Module:
    """(Re-)attach every site to ``model.tsb`` and (re-)install its forward hook on the current target module.

    Idempotent. Needed after AIHWKit conversion (converted layers are new modules without our hooks) and
    after copying only part of a model; ``insert_tsb``, ``to_analog`` and ``load_torchvision`` call it.
    """
    block = get_tsb(model)
    sites = getattr(model, SITES_NAME, None)
    if sites is None:
        raise TSBError("the model has model.tsb but no model.tsb_sites; build it with insert_tsb(model)")
    modules = dict(model.named_modules())
    for module in modules.values():
        _remove_tsb_hooks(module)
    for site in sites.values():
        if site.target not in modules:
            raise TSBError(f"TSB site target {site.target!r} is no longer a module of the model; "
                           "re-run insert_tsb on the backbone")
        site.bind(block)
        modules[site.target].register_forward_hook(site.hook)
    return model


def _budget_k(widths: Sequence[int], budget: float, backbone: int, rule: str = "auto",
              bias: bool = False) -> tuple[int, str]:
    """The largest power of two k whose block (k*k weights, +k with a bias) fits ``budget`` x backbone weights and
    that divides every site width (``rule="auto"``) or at least one (``"budget"``: the sites it does not divide
    are skipped, so the budget, not the narrowest site, sets k)."""
    limit = budget * backbone
    pow2s = [w & -w for w in widths]
    common = math.gcd(*widths)
    top = common & -common if rule == "auto" else max(pow2s)
    k = top
    while k > 1 and block_weight_count(k, bias) > limit:
        k //= 2
    size = block_weight_count(k, bias)
    if size > limit:
        raise ConfigError(
            f"even k=1 exceeds the verify budget ({budget:.4%} of {backbone} weights = {limit:.1f}); "
            "raise budget or pass an explicit k"
        )
    limited = (f"largest power of two dividing every site width (gcd {common} -> {top})" if rule == "auto"
               else f"largest power of two dividing a site width ({top}) within the budget")
    why = (
        f"k={k}" + ("" if rule == "auto" else f" ({rule})") + f": {limited}"
        + (f", halved to fit {size} <= {budget:.2%} x {backbone} = {limit:.0f} weights" if k < top else "")
        + f"; block = {size} weights = {size / backbone:.4%} of the backbone"
    )
    return k, why


def _valid_k(width: int) -> list[int]:
    return [d for d in range(1, width + 1) if width % d == 0 and d & (d - 1) == 0]


def insert_tsb(
    model: nn.Module,
    k: int | str = "auto",
    where: str | Sequence[str] = "conv",
    residual: bool = True,
    budget: float = 0.004,
    strict: bool = False,
    input_shape: Sequence[int] | None = None,
    bias: bool = False,
) -> nn.Module:
    """Insert one shared block (``model.tsb``) applied at every site of ``where``; in place, returns the model.

    ``k="auto"``: largest power of two dividing every site width with block weights ``<= budget * backbone
    weights``; ``k="budget"``: largest power of two within that budget dividing at least one site width (the
    others are skipped). ``bias=True``: the block gets a bias column on its tile (k*k + k weights).
    A site whose width k does not divide is skipped (with a warning when k was given) and listed in
    ``model.tsb_skipped_sites`` (``strict=True`` raises instead). ``input_shape`` (C, H, W) drives the
    one dry forward pass that finds the sites; default: first conv's channels x ``model.input_size``
    (224 if the model has none). The block is the identity at init, so outputs are unchanged.
    """
    if isinstance(model, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
        raise ConfigError(
            f"insert_tsb needs a model whose forward does not iterate its children, got {type(model).__name__}; "
            "wrap it: class Net(nn.Module) holding it as self.body with forward = self.body(x)"
        )
    if hasattr(model, TSB_NAME) or hasattr(model, SITES_NAME):
        raise ConfigError("the model already has a TSB (model.tsb); insert_tsb once per fresh backbone")
    if not 0 < budget <= 1:
        raise ConfigError(f"budget is a fraction of backbone weights in (0, 1], got {budget!r} (0.004 = 0.4%)")
    if isinstance(where, str):
        parse_where(where)
    if k not in K_RULES and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
        raise ConfigError(f"k must be 'auto', 'budget' or a positive int, got {k!r}")

    sites, trace_ = find_sites(model, where, input_shape)
    if not sites:
        raise ConfigError(f"no insertion sites found for where={where!r}; pass a list of module names")
    backbone = backbone_weight_count(model)
    skipped: list[dict[str, str | int | None]] = [
        {"name": n, "width": None, "reason": f"runs {trace_.counts[n]} times per forward (shared module)"}
        for n in repeated_layers(trace_)
    ]
    given = k not in K_RULES
    if isinstance(k, str):
        k, why = _budget_k([s.width for s in sites], budget, backbone, rule=k, bias=bias)
    else:
        assert isinstance(k, int)  # checked above
        size = block_weight_count(k, bias)
        why = f"k={k} given; block = {size} weights = {size / max(backbone, 1):.4%} of the backbone"
        if size > budget * backbone:
            warnings.warn(f"k={k} gives {size} verified weights, over the {budget:.2%} budget", stacklevel=2)

    kept: list[Site] = []
    for s in sites:
        if s.width % k == 0:
            kept.append(s)
            continue
        msg = (f"site {s.target!r} has width {s.width}, not a multiple of k={k} "
               f"(valid power-of-two k: {_valid_k(s.width)})")
        if strict:
            raise ConfigError(msg + "; pick such a k, or strict=False to skip the site")
        if given:  # k: budget skips by design (logged below with the choice)
            warnings.warn(msg + "; skipped (model.tsb_skipped_sites)", stacklevel=2)
        skipped.append({"name": s.target, "width": s.width, "reason": f"width not a multiple of k={k}"})
    if not kept:
        raise ConfigError(f"k={k} divides no site width ({sorted({s.width for s in sites})}); choose a smaller k")

    model.tsb = TinySharedBlock(k, residual=residual, bias=bias)
    container = nn.ModuleDict()
    for s in kept:
        key = s.target.replace(".", "_") or "root"
        while key in container:
            key += "_"
        container[key] = TSBSite(s.target, s.width, s.kind)
    setattr(model, SITES_NAME, container)
    setattr(model, SKIPPED_NAME, skipped)
    setattr(model, CONFIG_NAME, {
        "k": k, "where": where if isinstance(where, str) else list(where), "residual": residual,
        "budget": budget, "backbone_weights": backbone, "tsb_weights": block_weight_count(k, bias),
        "n_sites": len(kept), "k_choice": why, "bias": bias,
    })
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None:  # same device and dtype as the backbone
        model.tsb.to(device=param.device, dtype=param.dtype)
    unfit = len(sites) - len(kept)
    log.info("insert_tsb: %d sites (%s), %s%s", len(kept), where, why,
             "" if given or not unfit else f"; {unfit} site(s) k does not divide skipped")
    return bind_sites(model)
