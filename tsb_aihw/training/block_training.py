"""Train only the shared block on a frozen backbone (e.g. a digital twin holding a chip's read-back weights).

The backbone must stay bit-identical, BN running statistics included: every parameter outside the block
gets ``requires_grad=False`` for the run and the whole model stays in eval mode except the block itself.
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Iterable

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.training.loop import (
    EarlyStop,
    OptimArgs,
    TrainConfig,
    TrainResult,
    check_recipe_data,
    fit,
    resolve_optim,
    setup_optimizer,
)
from tsb_aihw.training.noise_injection import (
    cached_forward,
    is_digital_layer,
    noise_ramp,
    noisy_layers,
    weight_noise,
)
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.device import resolve_device
from tsb_aihw.utils.seeding import derive_seed, reseed_loader, seed_everything

if TYPE_CHECKING:
    from tsb_aihw.devices.presets import DevicePreset
    from tsb_aihw.training.block_cache import BlockCache

BlockSpec = nn.Module | str | Iterable[nn.Parameter]


#: ``train_block``'s keyword defaults when no recipe is given (Adam always; a recipe may choose SGD).
BLOCK_DEFAULTS = OptimArgs(optimizer="adam", lr=1e-3, schedule="constant", weight_decay=0.0)

_RESIDUAL_STD: dict[str, float] = {}  # per preset identity: measured once per process


def verified_residual_std(preset: DevicePreset) -> float:
    """The sd of a write-verified weight's programming error, relative to the layer's abs-max, as measured.

    Why measured and not ``tolerance / sqrt(3)``: only the Gaussian model accepts errors uniform in the tolerance
    of max|W|; the conductance presets verify per device (two per weight, in units of g_max, columnwise scales)
    through noisy verify reads. This is ``devices.characterize``'s verified "programmed" sd (docs/devices.md's
    tables: a 64x256 Gaussian matrix, 3 seeded chips), the number :class:`WeightNoise` then draws at
    (Gaussian of that sd, where nvcim-gaussian's true residual is uniform: same second moment). The global
    random state is left as it was."""
    from tsb_aihw.devices.characterize import characterize

    key = preset.identity
    if key not in _RESIDUAL_STD:
        with torch.random.fork_rng(devices=[]):
            measured = characterize(preset, n_chips=3, times={"programmed": None})
        _RESIDUAL_STD[key] = float(measured.verified.sd_over_absmax["programmed"])
    return _RESIDUAL_STD[key]


def resolve_block(model: nn.Module, block: BlockSpec) -> tuple[list[nn.Parameter], list[nn.Module]]:
    """(parameters to train, modules holding them) for a module, a submodule name or a parameter list."""
    if isinstance(block, str):
        try:
            block = model.get_submodule(block)
        except AttributeError as exc:
            raise ConfigError(f"model has no submodule {block!r} to train; insert the block first "
                              "(tsb_aihw.models.insert_tsb) or pass block=<module or parameters>") from exc
    if isinstance(block, nn.Module):
        params = list(block.parameters())
    else:
        params = list(block)
    model_params = {id(p) for p in model.parameters()}
    if not params:
        raise ConfigError("the block has no parameters to train")
    if any(id(p) not in model_params for p in params):
        raise ConfigError("the block's parameters are not part of the model; pass a submodule of the model")
    ids = {id(p) for p in params}
    modules = [m for m in model.modules() if any(id(p) in ids for p in m.parameters(recurse=False))]
    return params, modules


def train_block(
    model: nn.Module,
    train_loader: Iterable,
    *,
    block_params: BlockSpec = "tsb",
    epochs: int,
    lr: float | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    val_loader: Iterable | None = None,
    noise_std: float = 0.0,
    backbone_noise_std: float = 0.0,
    schedule: str | None = None,
    weight_decay: float | None = None,
    early_stop: EarlyStop | None = None,
    cache: BlockCache | None = None,
    recipe: TrainRecipe | None = None,
) -> TrainResult:
    """Cross-entropy + Adam on the block's parameters only; everything else is bit-identical afterwards.

    ``block_params``: the block's parameters, the block module or its name in ``model`` (default ``"tsb"``).
    Modules owning block parameters run in train mode, all others in eval mode (frozen BN statistics, no
    dropout). ``noise_std`` > 0 adds weight noise (relative to abs-max) to the block's Conv/Linear weights
    while training, e.g. the residual error of write-verify. ``backbone_noise_std`` > 0 adds fresh noise to
    the frozen backbone's Conv/Linear weights at every forward instead of one chip's fixed weights (the
    "generic block" control); the backbone itself is not changed. Validation runs noise-free. With
    ``val_loader`` the best-val state is kept.  ``seed`` seeds the noise and resets the loader's shuffle generator.
    ``cache`` (``block_cache.build_block_cache``): ``train_loader`` yields its cached activations
    (``cache.loader(batch)``) and the frozen prefix is replayed from them instead of recomputed.
    Without ``recipe``: Adam, ``lr`` (default 1e-3), per-epoch ``schedule`` (constant), ``weight_decay`` (0).
    A :class:`TrainRecipe` replaces those (passing them too is an error) and adds its per-step LR curve,
    label smoothing, batch augmentation, clipping, noise warm-up (of both noise kinds) and precision.
    """
    given = OptimArgs(None, lr, schedule, weight_decay)
    resolve_optim(epochs, recipe, given, BLOCK_DEFAULTS)  # bad values fail before anything runs
    check_recipe_data(recipe, train_loader)
    dev = resolve_device(device)
    seed_everything(seed)
    reseed_loader(train_loader, derive_seed(seed, "batches"))  # same batches whatever ran before
    model.to(dev)
    params, owners = resolve_block(model, block_params)
    block_ids = {id(p) for p in params}
    saved_flags = [(p, p.requires_grad) for p in model.parameters()]
    block_layers = [m for m in owners if is_digital_layer(m)]
    owner_ids = {id(m) for m in owners}
    backbone_layers = [m for _, m in noisy_layers(model) if id(m) not in owner_ids]
    if noise_std > 0 and not block_layers:
        raise ConfigError("noise_std > 0 needs Conv/Linear layers in the block; pass noise_std=0")
    if cache is not None and backbone_noise_std > 0:
        raise ConfigError("backbone_noise_std > 0 redraws the backbone at every step, so its activations cannot be "
                          "cached; pass cache=None")
    if cache is not None and recipe is not None and recipe.augment != "none":
        raise ConfigError(f"recipe augment={recipe.augment!r} would crop and flip the cached activations, not the "
                          "images; use a recipe with augment='none' for cached block training")
    if backbone_noise_std > 0 and not backbone_layers:
        raise ConfigError("backbone_noise_std > 0 needs digital Conv/Linear backbone layers; train on a "
                          "digital twin or pass backbone_noise_std=0")

    def set_train_mode(m: nn.Module) -> None:
        m.eval()
        for owner in owners:
            owner.train()
        if backbone_noise_std > 0:  # noise on, but the backbone modules themselves stay in eval mode
            for layer in backbone_layers:
                layer.parametrizations.weight.train()

    start = time.perf_counter()
    try:
        for p in model.parameters():
            p.requires_grad_(id(p) in block_ids)
        with ExitStack() as stack:
            noisy = [*stack.enter_context(weight_noise(model, noise_std, block_layers if noise_std > 0 else [])),
                     *stack.enter_context(weight_noise(model, backbone_noise_std,
                                                       backbone_layers if backbone_noise_std > 0 else []))]
            opt, sched, optim = setup_optimizer(params, epochs, recipe, given, BLOCK_DEFAULTS)
            out = fit(
                model, train_loader, val_loader, epochs=epochs, optimizer=opt, scheduler=sched,
                set_train_mode=set_train_mode, forward=cached_forward if cache is None else cache.forward,
                device=dev, early_stop=early_stop, progress=progress, desc="block training", recipe=recipe,
                seed=derive_seed(seed, "augment"), on_step=noise_ramp(noisy, recipe), method="block",
                noise_std=noise_std, run_seed=seed,
            )
    finally:
        for p, flag in saved_flags:
            p.requires_grad_(flag)
    model.eval()
    return TrainResult(
        method="block", epochs_budget=epochs, epochs_run=len(out.history),
        wall_time_s=time.perf_counter() - start, history=out.history, best_epoch=out.best_epoch,
        best_val_acc=out.best_val_acc, stopped_early=out.stop_reason is not None,
        stop_reason=out.stop_reason, restored_best=out.restored_best,
        trainable_params=sum(p.numel() for p in params), seed=seed,
        config=TrainConfig(noise_std=noise_std, optim=optim, precision=out.precision, early_stop=early_stop,
                           backbone_noise_std=backbone_noise_std),
        precision=out.precision,
    )
