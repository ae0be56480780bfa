"""The digital models a study deploys, trained on demand and checkpointed: backbones, blocks, masks.

- ``backbone("early")``: noise-injection training to TSB's "early convergence" budget;
  ``backbone("full")``: baseline (b), trained to the full budget (the reference of every gap);
- ``tsb_model(backbone)``: the early (TSB's flow) or fully trained backbone with the zero-initialised shared
  block inserted;
- ``fixed_block("clean"|"generic")``: a block trained once for all chips (controls);
- ``selection(rule, fraction)``: selective write-verify masks on (b).

Split by job: :class:`TrainedModels` (the above, with their training meta), :class:`BlockFitter` (every block's
training: calibration sets, the cache, the block's k and batch) and :class:`~tsb_aihw.pipeline.adopt.ModelSources`
(this run's checkpoints, then adoption). Training happens in the process that owns the output directory; workers
(``can_train=False``) only load checkpoints, so a missing one is an error there. ``models_from`` names finished
runs or exported folders (``results/<study>``) whose models are taken instead of re-trained when their key is this
study's.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from tsb_aihw.analog import load_read_back
from tsb_aihw.baselines import selection_masks
from tsb_aihw.data import get_dataset, make_loader
from tsb_aihw.devices import DevicePreset
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_tsb
from tsb_aihw.pipeline.adopt import ModelSources
from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
from tsb_aihw.pipeline.config import BlockConfig, StudyConfig
from tsb_aihw.pipeline.methods import MethodSpec
from tsb_aihw.records import ModelArgs, TrainingMeta
from tsb_aihw.training import TrainResult, train_block, train_noise_injection
from tsb_aihw.training.block_cache import build_block_cache
from tsb_aihw.training.checkpointing import Checkpointing, plan_stops, stop_path
from tsb_aihw.training.stops import anneal_from_stop
from tsb_aihw.utils.device import resolve_device
from tsb_aihw.utils.io import JsonObject
from tsb_aihw.utils.seeding import derive_seed, seed_everything
from tsb_aihw.utils.store import Checkpoints


@dataclass
class StudyData:
    """Loaders of one study: shuffled train, val, test (optionally cut to ``data.eval_limit`` images)."""

    train: Any
    val: Any
    test: Any
    info: Any
    test_info: Any


def study_split(cfg: StudyConfig, split: str, augment: bool | None = None) -> Any:
    """One split of the study's dataset, as its data config and seed define it (the one way a study reads data)."""
    d = cfg.data
    return get_dataset(d.name, split, root=d.root, download=d.download, seed=cfg.seed, augment=augment,
                       pool_fractions=d.pool_fractions)


def load_study_data(cfg: StudyConfig) -> StudyData:
    """A recipe that augments whole batches needs an un-augmented training split (it crops and flips itself)."""
    d = cfg.data
    batch_aug = any(r is not None and r.augment != "none"
                    for r in (cfg.backbone.recipe, cfg.block.recipe))
    train = study_split(cfg, "train", augment=False if batch_aug else None)
    val, full_test = (study_split(cfg, split) for split in ("val", "test"))
    test: Any = full_test
    if d.eval_limit is not None and d.eval_limit < len(full_test):
        test = torch.utils.data.Subset(full_test, range(d.eval_limit))
    return StudyData(train=make_loader(train, d.batch_size, shuffle=True, seed=cfg.seed),
                     val=make_loader(val, d.eval_batch_size), test=make_loader(test, d.eval_batch_size),
                     info=train.info, test_info=full_test.info)


def backbone_args(cfg: StudyConfig, info: Any) -> ModelArgs:
    """``get_model``'s arguments for the configured architecture sized for the dataset (results.json records
    them, so an exported state dict can be rebuilt without the data)."""
    return ModelArgs(name=cfg.model.name, num_classes=info.num_classes, in_channels=info.in_channels,
                     width=cfg.model.width, input_size=info.image_size[0], fc_init=cfg.model.fc_init)


def build_backbone(cfg: StudyConfig, info: Any) -> nn.Module:
    """A fresh backbone of the configured architecture, sized for the dataset."""
    return backbone_args(cfg, info).build()


def train_chip_block(models: "TrainedModels", model_tsb: nn.Module, weights: dict[str, torch.Tensor], seed: int,
                     loader_keys: tuple[Any, ...] = ("block-train",), progress: bool = False,
                     bn_state: dict[str, torch.Tensor] | None = None,
                     block: BlockConfig | None = None) -> tuple[torch.Tensor, float]:
    """Train a fresh zero-initialised block on a digital twin holding one chip's read-back backbone weights
    (and, with ``bn_state``, the BN statistics re-estimated through that chip), with ``block``'s budget (None:
    the config's).

    Returns the trained block weight and the wall time (the calibration cache's build included)."""
    twin = copy.deepcopy(model_tsb)
    load_read_back(twin, {k: v for k, v in weights.items() if not k.startswith("tsb")})
    if bn_state:
        load_bn_state(twin, bn_state)
    tsb = get_tsb(twin)
    tsb.reset_parameters()
    res = models.blocks.fit_block(twin, seed, loader_keys, progress=progress, block=block)
    return tsb.conv.weight.detach().clone(), res.wall_time_s


def bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Running statistics of every BatchNorm layer, by module name (digital in an analog model too)."""
    return {f"{name}.{k}": v.detach().clone() for name, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) for k, v in m.named_buffers()}


@torch.no_grad()
def load_bn_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy BN statistics into a model of the same architecture (wrapper names of an analog model stripped)."""
    from tsb_aihw.analog.chip import canonical_name

    own = {canonical_name(f"{n}.{k}"): v for n, m in model.named_modules()
           if isinstance(m, nn.modules.batchnorm._BatchNorm) for k, v in m.named_buffers()}
    for key, value in state.items():
        target = own.get(canonical_name(key))
        if target is None:
            raise RuntimeError(f"BN buffer {key} has no counterpart in the twin")
        target.copy_(value.to(target.device, target.dtype))


def train_block_for_chip(models: "TrainedModels", chip: Any, at: float, write: int = 0, backbone: str = "early",
                         with_bn: bool = False, block: BlockConfig | None = None) -> tuple[torch.Tensor, float]:
    """Block write ``write`` of a :class:`~tsb_aihw.analog.chip.Chip`: read its backbone at chip time ``at``
    and train a fresh block on it (read-back, batches and initialisation seeded by chip and write). ``with_bn``:
    the twin takes the chip's current BN statistics (re-estimated through the chip before this call).
    ``block``: the block's budget (reads, epochs, lr, calibration images; None: the config's)."""
    b = block if block is not None else models.cfg.block
    weights = chip.read_back(at, b.n_reads, write=write)
    return train_chip_block(models, models.tsb_model(backbone, b), weights, chip.step_seed("block-train", write),
                            ("block-train", chip.index, write), bn_state=bn_state(chip.model) if with_bn else None,
                            block=b)


def seeded_train_loader(cfg: StudyConfig, data: StudyData, *keys: Any) -> Any:
    """The study's training loader with its shuffle generator reset from (seed, keys): the batches a step sees
    do not depend on what ran before it in this process."""
    gen = getattr(data.train, "generator", None)
    if gen is not None:
        gen.manual_seed(derive_seed(cfg.seed, "loader", *[str(k) for k in keys]))
    return data.train


class BlockFitter:
    """Where every block of one study trains (:meth:`fit_block`): on the shuffled training split or on the
    study's fixed calibration sets (built once per size); and the block's k, batch and calibration size checked
    and resolved before anything trains."""

    def __init__(self, cfg: StudyConfig, data: StudyData, preset: DevicePreset):
        self.cfg, self.data, self.preset = cfg, data, preset
        self._calibration: dict[int | None, Dataset] = {}
        self._config_k: int | None = None  # the k the config's block resolves to (block_value)

    def train_loader(self, *keys: Any) -> Any:
        return seeded_train_loader(self.cfg, self.data, *keys)

    def calibration_set(self, n: int | None = None) -> Dataset:
        """The blocks' calibration images: the first ``n`` (default ``block.calibration_images``) of one fixed
        seeded permutation of the un-augmented training split, the same for every chip and block of the study
        (so a smaller set is part of every larger one)."""
        n = n if n is not None else self.cfg.block.calibration_images
        if n not in self._calibration:
            ds = self.data.train.dataset
            if getattr(ds.info, "augment", False):  # the cache must see the images as they are
                ds = study_split(self.cfg, "train", augment=False)
            if n is None or n > len(ds):
                raise ConfigError(f"block.calibration_images = {n} but the training split has {len(ds)} images; "
                                  "lower it, or set it to null to train blocks on the whole split")
            gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, "calibration"))
            self._calibration[n] = Subset(ds, torch.randperm(len(ds), generator=gen)[:n].tolist())
        return self._calibration[n]

    def fit_block(self, model: nn.Module, seed: int, loader_keys: tuple[Any, ...], *,
                  backbone_noise_std: float = 0.0, progress: bool = False,
                  block: BlockConfig | None = None) -> TrainResult:
        """Train ``model``'s block with ``block``'s budget (None: the config's): the one way every block of a
        study trains.

        On the whole shuffled training split, or (``block.calibration_images``) on the fixed calibration set in
        ``block.batch_size`` batches (None: the data's), replayed from activations cached before the first site
        unless the backbone is redrawn at every step (``backbone_noise_std`` > 0). ``wall_time_s`` includes the
        cache's build."""
        b = block if block is not None else self.cfg.block
        dev = resolve_device(self.cfg.device)
        recipe = b.recipe
        seed_everything(seed)
        train = functools.partial(train_block, model, block_params=list(get_tsb(model).parameters()),
                                  epochs=b.epochs, lr=None if recipe else b.lr, device=dev, seed=seed,
                                  progress=progress, backbone_noise_std=backbone_noise_std, recipe=recipe,
                                  noise_std=b.noise_std(self.preset))
        if b.calibration_images is None:
            return train(self.train_loader(*loader_keys))
        batch = self.block_batch(b)
        if backbone_noise_std > 0:
            return train(make_loader(self.calibration_set(b.calibration_images), batch, shuffle=True,
                                     seed=self.cfg.seed))
        cache = build_block_cache(model.to(dev), self.calibration_set(b.calibration_images), batch_size=batch,
                                  device=dev)
        res = train(cache.loader(batch), cache=cache)
        return dataclasses.replace(res, wall_time_s=res.wall_time_s + cache.build_seconds)

    def check_block(self, block: BlockConfig | None = None) -> int:
        """Insert the configured block (or ``block``) into an untrained backbone: a k that fits no site, or too
        many calibration images, fail now, not after the backbones were trained. Returns the block's k (the
        number ``k: auto`` resolves to)."""
        b = block if block is not None else self.cfg.block
        try:
            with warnings.catch_warnings():  # the sites a k skips are reported when the real model is built
                warnings.simplefilter("ignore")
                k = get_tsb(b.insert(build_backbone(self.cfg, self.data.info))).k
        except (ConfigError, ValueError) as exc:
            raise ConfigError(f"block: {exc}") from None
        if b.calibration_images is not None:
            self.calibration_set(b.calibration_images)
        return int(k)

    def block_batch(self, block: BlockConfig) -> int:
        """Images per step of ``block``'s training on the calibration set: ``block.batch_size``, else the data's."""
        return block.batch_size or self.cfg.data.batch_size

    def block_value(self, name: str) -> Any:
        """The config's value of a block field, ``k: auto`` as the k it resolves to and ``batch_size: null`` as the
        data's batch (a block sweep's reference)."""
        if name == "batch_size":
            return self.block_batch(self.cfg.block)
        if name != "k":
            return getattr(self.cfg.block, name)
        if self._config_k is None:
            self._config_k = self.check_block()
        return self._config_k


class TrainedModels:
    """Every digital model of one study (see the module docstring), cached in memory and on disk."""

    def __init__(self, cfg: StudyConfig, data: StudyData, preset: DevicePreset, checkpoints: Checkpoints,
                 progress: bool = True, can_train: bool = True, models_from: Sequence[str | Path] = ()):
        self.cfg, self.data, self.preset, self.progress = cfg, data, preset, progress
        self.sources = ModelSources(checkpoints, models_from, can_train)  # this run's checkpoints, then adoption
        self.blocks = BlockFitter(cfg, data, preset)
        self.models: dict[str, nn.Module] = {}
        self.meta: dict[str, TrainingMeta] = {}  # by checkpoint name (results' ``training``)
        self.masks: dict[tuple[str, float], dict[str, torch.Tensor]] = {}

    @property
    def noise_std(self) -> float:
        """Noise-injection std (relative to each layer's abs-max): the config's, else the preset's."""
        b = self.cfg.backbone
        return b.noise_std if b.noise_std is not None else self.preset.training_noise_std

    def train_loader(self, *keys: Any) -> Any:
        """The training loader, its shuffle reset from (seed, keys) (:func:`seeded_train_loader`)."""
        return seeded_train_loader(self.cfg, self.data, *keys)

    @functools.cached_property
    def keys(self) -> dict[str, JsonObject]:
        """Every checkpoint's key (once per process: an image folder's content identity walks the folder)."""
        return checkpoint_keys(self.cfg, self.noise_std)

    # -- models -------------------------------------------------------------------------------------------
    def backbone(self, which: str) -> nn.Module:
        """(b) (``"full"``), the early backbone (``"early"``) or (b) trained without noise (``"vanilla"``): loaded,
        adopted, or trained here.

        Every backbone run snapshots its state under ``OUT/train_state/<file>/`` and resumes from it after an
        interruption; (b)'s run keeps the stops its early backbones need (``backbone.early_from: stop``)."""
        if which in self.models:
            return self.models[which]
        name = f"backbone_{which}"
        epochs = self.cfg.backbone.early_epochs if which == "early" else self.cfg.backbone.full_epochs
        file = f"{name}-{epochs}ep" if which == "early" else name  # one early backbone per budget (frontier)
        key = self.keys[file]
        model = build_backbone(self.cfg, self.data.info)
        loaded = self.sources.load(file, key, model)
        if loaded is not None:
            meta = loaded
        elif which == "early" and self.cfg.backbone.early_from == "stop":
            self.sources.need_training(file)
            model, meta = self._early_from_stop(model)
            self.sources.save(file, key, model, meta)
        else:
            self.sources.need_training(file)
            seed = derive_seed(self.cfg.seed, "backbone", which)
            seed_everything(seed)  # before building: the initial weights come from torch's global generator
            model = build_backbone(self.cfg, self.data.info)
            recipe = self.cfg.backbone.recipe
            snapshots = Checkpointing(self.sources.train_state_dir(file),
                                      stops=self.stop_budgets() if which == "full" else ())
            noise_std = 0.0 if which == "vanilla" else self.noise_std
            res = train_noise_injection(model, self.train_loader("backbone", which), self.data.val,
                                        noise_std=noise_std, epochs=epochs,
                                        lr=None if recipe else self.cfg.backbone.lr, device=self.cfg.device,
                                        seed=seed, progress=self.progress, recipe=recipe, checkpointing=snapshots)
            meta = TrainingMeta(train_time_s=res.wall_time_s, epochs=epochs, noise_std=noise_std,
                                precision=res.precision, history=[dict(h) for h in res.history])
            self.sources.save(file, key, model, meta)
            snapshots.resume_path.unlink(missing_ok=True)  # the checkpoint now holds the run; stops stay
        self.models[which], self.meta[name] = model.eval(), meta
        return model

    def stop_budgets(self) -> tuple[float, ...]:
        """The early budgets (fractions of (b)'s run) whose stops (b) keeps: the study's and ``backbone.stops``."""
        b = self.cfg.backbone
        if b.early_from != "stop":
            return ()
        own = [b.early_epochs / b.full_epochs] if b.early_epochs < b.full_epochs else []
        return tuple(sorted({*own, *b.stops}))

    def check_stops(self) -> None:
        """A stop outside (b)'s stable phase fails now, in one line, not after hours of training."""
        budgets = self.stop_budgets()
        if budgets:
            steps = self.cfg.backbone.full_epochs * len(self.data.train)
            try:
                plan_stops(self.cfg.backbone.recipe, steps, budgets)
            except ConfigError as exc:
                raise ConfigError(f"backbone.early_from: stop, early budgets {[round(f, 4) for f in budgets]} "
                                  f"(early_epochs / full_epochs and backbone.stops): {exc}") from None

    def _early_from_stop(self, model: nn.Module) -> tuple[nn.Module, TrainingMeta]:
        """The early backbone as (b)'s run stopped at early_epochs / full_epochs and annealed (training.stops);
        at the full budget, (b) itself."""
        b = self.cfg.backbone
        full = self.backbone("full")
        if b.early_epochs == b.full_epochs:
            model.load_state_dict(full.state_dict())
            return model, dataclasses.replace(self.meta["backbone_full"], stop={"budget": 1.0})
        budget = b.early_epochs / b.full_epochs
        places = self.sources.train_state_dirs("backbone_full")
        found = [stop_path(d, budget) for d in places if stop_path(d, budget).is_file()]
        if not found:
            raise ConfigError(f"backbone.early_from: stop needs (b)'s stop at budget {budget:g} "
                              f"({stop_path(places[0], budget)}), but (b) was trained without it; add {budget:g} to "
                              "backbone.stops and train (b) again (move its checkpoint aside), or set "
                              "backbone.early_from: separate")
        res = anneal_from_stop(model, self.train_loader("backbone", "full"), self.data.val, found[0],
                               device=self.cfg.device, progress=self.progress)
        plan = res.config.stop if res.config is not None else None
        assert plan is not None  # an anneal from a stop always records the stop's plan
        meta = TrainingMeta(train_time_s=res.wall_time_s, epochs=b.early_epochs, noise_std=self.noise_std,
                            precision=res.precision, history=[dict(h) for h in res.history],
                            stop=plan.to_dict(), stop_file=str(found[0]))
        return model, meta

    def tsb_model(self, backbone: str = "early", block: BlockConfig | None = None) -> nn.Module:
        """The early (default) or fully trained backbone with the (zero-initialised) shared block inserted: the
        config's block, or ``block``'s k (a block sweep over k)."""
        b = block if block is not None else self.cfg.block
        same = b.k == self.cfg.block.k or b.k == self.blocks.block_value("k")  # a k equal to what `auto` resolves to
        name = f"{backbone}_tsb" if same else f"{backbone}_tsb_k{b.k}"
        if name not in self.models:
            self.models[name] = b.insert(copy.deepcopy(self.backbone(backbone))).eval()
        return self.models[name]

    def fixed_block(self, kind: str) -> nn.Module:
        """A block trained once for all chips: on the clean backbone, or on freshly drawn backbone noise."""
        name = f"block_{kind}"
        if name in self.models:
            return self.models[name]
        model = copy.deepcopy(self.tsb_model())
        noise = 0.0 if kind == "clean" else self.noise_std
        file = f"{name}-{self.cfg.backbone.early_epochs}ep"
        key = self.keys[file]
        loaded = self.sources.load(file, key, model)
        if loaded is not None:
            meta = loaded
        else:
            self.sources.need_training(file)
            res = self.blocks.fit_block(model, derive_seed(self.cfg.seed, name), (name,),
                                        backbone_noise_std=noise, progress=self.progress)
            meta = TrainingMeta(train_time_s=res.wall_time_s, noise_std=noise, precision=res.precision)
            self.sources.save(file, key, model, meta)
        self.models[name], self.meta[name] = model.eval(), meta
        return self.models[name]

    def digital_model(self, spec: MethodSpec, block: BlockConfig | None = None) -> nn.Module:
        """The digital model a method programs (``block``: a per-chip block's k other than the config's)."""
        if spec.block is None:
            return self.backbone(spec.backbone)
        if spec.block in ("clean", "generic"):
            return self.fixed_block(spec.block)
        return self.tsb_model(spec.backbone, block)

    def selection(self, rule: str, fraction: float) -> dict[str, torch.Tensor]:
        """Selective write-verify masks on (b)'s digital backbone (computed once per process, seeded)."""
        key = (rule, float(fraction))
        if key not in self.masks:
            self.masks[key] = selection_masks(self.backbone("full"), self.train_loader("select", rule), fraction,
                                              rule, seed=derive_seed(self.cfg.seed, "select", rule))
        return self.masks[key]

    def prepare(self, specs: list[MethodSpec]) -> None:
        """Train (or load) every digital model the methods need, before any cell is dispatched."""
        self.check_stops()
        self.backbone("full")
        for spec in specs:
            self.digital_model(spec)

    def train_time(self, spec: MethodSpec, block_time_per_chip: float) -> float:
        """Training wall time of a method: its backbone's, plus its block's (fixed, or the mean per chip)."""
        t = float(self.meta[f"backbone_{spec.backbone}"].train_time_s)
        if spec.block in ("clean", "generic"):
            t += self.meta[f"block_{spec.block}"].train_time_s
        elif spec.block == "chip":
            t += block_time_per_chip
        return t
