"""Study, drift, sweep and refresh configs: nested dataclass trees on the one schema (:mod:`tsb_aihw.utils.schema`).

Every default is defined once, here, as a field default; the CLI passes only the flags a user gave, as
dotted overrides (:func:`config_from`). ``validate`` adds the checks that span fields or need a registry
(preset, model and dataset names, times, device), so a bad config fails in a second, before any training.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar, Union

from tsb_aihw.baselines.selective_verify import METHODS as SELECTION_METHODS
from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.evaluation.times import DRIFT_TIMES, check_times
from tsb_aihw.pipeline.methods import ALL_METHODS, BN_TWINS, METHODS
from tsb_aihw.training.recipe import TrainRecipe
from tsb_aihw.utils.io import JsonObject, JsonValue
from tsb_aihw.utils.schema import build, check, non_default_tree, section, spec, to_tree, with_overrides
from tsb_aihw.utils.yamlfile import load_yaml_file

EARLY_FROM = ("separate", "stop")  # backbone.early_from choices
# insert_tsb(where=...) choices a config can name; "+classifier" adds a site on the classifier's input (models/sites.py)
BLOCK_SITES = ("conv", "stage", "all", "classifier", "conv+classifier", "stage+classifier", "all+classifier")
BLOCK_K_RULES = ("auto", "budget")  # block.k as a rule (models.insertion.K_RULES), else an int
SEED_MAX = 2**32 - 1  # numpy and the data splits take seeds in [0, 2**32)
MAX_CHIPS = 100_000
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536
CHIPS_WHY = "need at least 2 chips for a spread and a 95% CI (20+ for stable means)"


@dataclass
class DataConfig:
    name: str = "mnist5k"
    root: Union[str, None] = None
    download: bool = False
    batch_size: int = spec(128, lo=1, hi=MAX_BATCH)
    eval_batch_size: int = spec(500, lo=1, hi=MAX_BATCH)
    eval_limit: Union[int, None] = spec(None, lo=1, hi=10**9)  # evaluate on the first N test images (None = all)
    # train/val/test fractions of a dataset without an official test split (None: 70/10/20); e.g. [0.8, 0.1, 0.1]
    # trains on 40,000 of the CIFAR-10 archive's 50,000 images and still tests on 5,000 never used for selection
    pool_fractions: Union[list[float], None] = spec(None, lo=0.0, lo_open=True, hi=1.0, hi_open=True)


@dataclass
class ModelConfig:
    name: str = "lenet3"
    width: float = spec(1.0, lo=0.0, lo_open=True, hi=64.0)
    # VGG-8/ResNet-18 classifier init: fan_out (NF_Training, the default) or fan_in (docs/training.md: fan_out's
    # first logits are ~30x too large, and SGD noise injection on VGG-8 then stays at chance)
    fc_init: Union[str, None] = spec(None, choices=("fan_out", "fan_in"))


@dataclass
class BackboneConfig:
    full_epochs: int = spec(30, lo=1, hi=MAX_EPOCHS)  # (b): noise-injection training to convergence
    early_epochs: int = spec(6, lo=1, hi=MAX_EPOCHS)  # TSB backbone: "early convergence" budget
    lr: float = spec(1e-3, lo=0.0, lo_open=True, hi=10.0)
    noise_std: Union[float, None] = spec(None, lo=0.0, hi=10.0)  # None: the preset's training_noise_std
    # how (b) and the early backbone train (tsb_aihw.training.recipe: SGD-nesterov, one-cycle, label smoothing, batch
    # crop+flip, noise warm-up); None: the trainer's defaults (Adam at lr, per-epoch cosine). Keyed as written (a key
    # spelled at its default stays in every checkpoint key and identity, as when the recipe was a plain mapping)
    recipe: Union[TrainRecipe, None] = spec(None, as_given=True)
    # where the early backbone comes from: "separate" (its own run of early_epochs, the paper's flow) or "stop"
    # ((b)'s own run stopped at early_epochs / full_epochs of its steps and annealed, the anneal counting in its
    # budget: training.stops; needs recipe.schedule wsd). "Early convergence" then means the same training stopped
    # early, and a frontier costs one (b) plus short anneals
    early_from: str = spec("separate", choices=EARLY_FROM)
    # more early budgets (fractions of full_epochs) whose stops (b)'s run keeps for later studies (a frontier sets
    # its budgets): they change no model, so no key holds them
    stops: list[float] = spec(lo=0.0, lo_open=True, hi=1.0, hi_open=True, factory=list)


@dataclass
class BlockConfig:
    # auto: the largest power of two dividing every site width within the budget; budget: the largest within it
    # dividing any site width (the others skipped); an int: that k (docs/design.md, "Choosing k automatically")
    k: Union[int, str] = spec("auto", lo=1, hi=4096)
    where: str = spec("conv", choices=BLOCK_SITES, what="insertion rule")
    residual: bool = True
    # the fraction of the backbone's weights the block may put on its verified tile (k: auto and k: budget);
    # 0.004 = the paper's "< 0.4%"
    budget: float = spec(0.004, lo=0.0, lo_open=True, hi=1.0)
    # a bias column on the block's tile, programmed and write-verified like its kernel (k*k + k weights)
    bias: bool = False
    # train every block with weight noise at the write-verify residual of the preset's verified weights
    # (training.block_training.verified_residual_std): the error it will be programmed with
    train_verify_residual: bool = False
    epochs: int = spec(8, lo=1, hi=MAX_EPOCHS)
    lr: float = spec(5e-3, lo=0.0, lo_open=True, hi=10.0)
    read_time: float = spec(0.0, lo=0.0, hi=1e10)  # seconds after programming at which the chip is read back
    n_reads: int = spec(1, lo=1, hi=1000)  # read-backs averaged (reduces read noise)
    # images the block trains on (a real chip gets a limited calibration set): a fixed seeded subset of the
    # training split, un-augmented, whose activations before the first site are cached per model
    # (tsb_aihw.training.block_cache); None: the whole (shuffled) training split, uncached
    calibration_images: Union[int, None] = spec(None, lo=1, hi=10_000_000)
    recipe: Union[TrainRecipe, None] = spec(None, as_given=True)  # how blocks train; None: Adam at lr
    # images per block step on the calibration set (None: data.batch_size): the optimizer steps an epoch gives, which
    # is what a short block budget runs out of (docs/performance.md, section 2)
    batch_size: Union[int, None] = spec(None, lo=1, hi=65_536)
    # re-estimate BN statistics through the programmed chip before its block is trained (tsb, tsb_full, the refresh
    # study): better on CIFAR-10 VGG-8 and ResNet-18, paired per chip (docs/design.md); false: the paper's flow
    recalibrate_bn: bool = True

    def validate(self) -> "BlockConfig":
        """The checks between block fields (a study's, or a sweep point's with its overrides)."""
        if isinstance(self.k, str) and self.k not in BLOCK_K_RULES:
            raise ConfigError(f"block.k = {self.k!r}: must be 'auto', 'budget' or an integer >= 1 (channels of the "
                              "shared block)")
        if self.calibration_images is not None and self.recipe is not None and self.recipe.augment != "none":
            raise ConfigError(f"block.calibration_images caches un-augmented activations, but block.recipe.augment = "
                              f"{self.recipe.augment!r}; set block.recipe.augment: none or calibration_images: null")
        if self.batch_size is not None and self.calibration_images is None:
            raise ConfigError(f"block.batch_size = {self.batch_size} sets the batches of the calibration set, but "
                              f"block.calibration_images is null (the whole split trains in data.batch_size batches); "
                              f"set block.calibration_images or drop batch_size")
        return self

    def insert(self, model: Any) -> Any:
        """``model`` with this config's shared block inserted (zero-initialised): the one place the fields map
        onto :func:`~tsb_aihw.models.insert_tsb`."""
        from tsb_aihw.models import insert_tsb

        return insert_tsb(model, k=self.k, where=self.where, residual=self.residual, budget=self.budget,
                          bias=self.bias)

    def noise_std(self, preset: Any) -> float:
        """Weight noise on the block while it trains (relative to its abs-max): the preset's verified residual
        with ``train_verify_residual``, else 0."""
        if not self.train_verify_residual:
            return 0.0
        from tsb_aihw.training.block_training import verified_residual_std

        return verified_residual_std(preset)


#: config fields whose effect a cell's key carries through its method spec (``MethodSpec.bn_recalibration``), so
#: study identities, cell and checkpoint keys leave them out: one store holds both settings' cells side by side
SPEC_CARRIED_KEYS = (("block", "recalibrate_bn"),)
#: config fields that change no result: extra snapshots (b)'s run keeps (a frontier adding a budget keeps its store)
UNKEYED_KEYS = (("backbone", "stops"),)


def keyed_tree(cfg: Any) -> JsonObject:
    """What results are keyed by: :func:`non_default_tree` minus :data:`SPEC_CARRIED_KEYS` and
    :data:`UNKEYED_KEYS`."""
    tree = non_default_tree(cfg)
    for part, name in (*SPEC_CARRIED_KEYS, *UNKEYED_KEYS):
        sub = tree.get(part)
        if isinstance(sub, dict):
            sub.pop(name, None)
            if not sub:
                tree.pop(part)
    return tree


def check_bn_variant(names: list[str], block: BlockConfig, field_name: str) -> None:
    """``tsb_bn`` is ``tsb`` itself (``tsb_full_bn`` is ``tsb_full``) while ``block.recalibrate_bn`` is on: refuse
    to compute it twice."""
    for twin, same in BN_TWINS.items():
        if block.recalibrate_bn and twin in names:
            raise ConfigError(f"{field_name} has {twin}, which is {same} itself while block.recalibrate_bn is true "
                              f"(the default); drop {twin}, or set block.recalibrate_bn: false to compare the paper's "
                              f"flow ({same}) with it")


#: the per-chip block's budget, which a sweep may set per point
BLOCK_BUDGET_KEYS = ("epochs", "lr", "calibration_images", "batch_size", "n_reads", "read_time")
#: what a cell may set for its per-chip block: the budget, and the block's size k (the fixed blocks and the
#: sites' rule stay the config's; where and residual change every TSB model of a study: one study per value)
PER_CHIP_BLOCK_KEYS = (*BLOCK_BUDGET_KEYS, "k")


@dataclass
class SelectiveConfig:
    methods: list[str] = spec(choices=SELECTION_METHODS, what="selection method",
                              factory=lambda: ["random", "magnitude", "second_derivative"])
    fraction_multipliers: list[float] = spec(lo=0.0, lo_open=True, hi=1e6, factory=lambda: [1.0, 10.0])
    extra_fractions: list[float] = spec(lo=0.0, lo_open=True, hi=1.0, factory=list)  # absolute fractions


@dataclass
class StudyConfig:
    preset: str = "nvcim-gaussian"
    preset_overrides: dict[str, Any] = spec(factory=dict)
    times: list[Union[float, str]] = spec(factory=lambda: [0.0])
    chips: int = spec(20, lo=2, hi=MAX_CHIPS, why=CHIPS_WHY)
    seed: int = spec(0, lo=0, hi=SEED_MAX)
    device: str = "cpu"
    methods: list[str] = spec(choices=ALL_METHODS, what="method", factory=lambda: list(METHODS))
    bn_recalibration_batches: int = spec(20, lo=1, hi=100_000)  # training batches streamed through each chip
    # chip evaluation on tsb_aihw.analog.fast_eval: off | exact | statistical (or true/false); None: the env's/default
    fast_eval: Union[bool, str, None] = spec(None, choices=(True, False, "off", "exact", "statistical"))
    # the statistical mode's matrix product: fp32 | bf16 (DAC codes and weights in bf16, fp32 accumulation and result;
    # docs/performance.md) | auto (bf16 where the CPU or GPU computes it natively, never for the ideal preset). Results
    # record the resolved value in provenance.fast_eval and cell keys carry it, so cells of the two are never mixed
    fast_eval_product: str = spec("fp32", choices=("fp32", "bf16", "auto"))
    data: DataConfig = section(DataConfig)
    model: ModelConfig = section(ModelConfig)
    backbone: BackboneConfig = section(BackboneConfig)
    block: BlockConfig = section(BlockConfig)
    selective: SelectiveConfig = section(SelectiveConfig)

    def to_dict(self) -> JsonObject:
        """The mapping this config is built from (results record it; recipes as their configs gave them)."""
        tree: JsonObject = to_tree(self)
        return tree

    def validate(self) -> "StudyConfig":
        """Re-check every field (code may have changed some) and the names the study will look up."""
        check(self)
        if not self.methods:
            raise ConfigError(f"methods is empty: give at least one of {', '.join(METHODS)}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"methods repeat a method ({self.methods}); give each once")
        if self.backbone.early_epochs > self.backbone.full_epochs:
            raise ConfigError(f"backbone.early_epochs ({self.backbone.early_epochs}) > full_epochs "
                              f"({self.backbone.full_epochs}): early convergence must not train longer")
        recipe = self.backbone.recipe
        if self.backbone.early_from == "stop" and (recipe is None or recipe.schedule != "wsd"):
            raise ConfigError("backbone.early_from: stop takes the early backbone from (b)'s run, which needs "
                              "backbone.recipe.schedule: wsd (warmup-stable-decay); set it, or early_from: separate")
        if self.backbone.stops and self.backbone.early_from != "stop":
            raise ConfigError(f"backbone.stops {self.backbone.stops} keeps stops of (b)'s run for early_from: stop, "
                              "but early_from is separate; set backbone.early_from: stop or drop stops")
        self.block.validate()
        check_bn_variant(self.methods, self.block, "methods")
        if "selective_verify" in self.methods and not self.selective.methods:
            raise ConfigError(f"selective.methods is empty but methods has selective_verify; give at least one "
                              f"of {', '.join(SELECTION_METHODS)} or drop selective_verify")
        preset = check_names(self.preset, self.preset_overrides, self.data.name, self.model.name, self.device)
        if self.data.pool_fractions is not None:
            check_pool_split(self.data.name, self.data.pool_fractions)
        preset.check_times(check_times(self.times))
        if self.fast_eval is None:  # a bad TSB_AIHW_FAST_EVAL fails now, not at the first evaluation
            from tsb_aihw.analog.fast_eval import check_fast_eval_env

            check_fast_eval_env()
        if self.fast_eval_product == "bf16":
            from tsb_aihw.analog.fast_eval import fast_eval_mode

            if fast_eval_mode(self.fast_eval) != "statistical":
                raise ConfigError(f"fast_eval_product: bf16 is part of the statistical mode, but fast_eval is "
                                  f"{fast_eval_mode(self.fast_eval)!r}; set fast_eval: statistical or "
                                  "fast_eval_product: fp32")
        return self


def at_sigmas(cfg: StudyConfig, sigmas: list[float], flag: str = "--sigma") -> list[StudyConfig]:
    """One study per device sigma, each *trained and deployed* at it (``noise.sigma`` in ``preset_overrides``).

    A sigma sweep instead deploys one set of models trained at the base sigma at every value; a study of TSB at a
    larger sigma needs backbones that saw that sigma's noise in training."""
    from tsb_aihw.devices import load_preset

    preset = load_preset(cfg.preset, overrides=cfg.preset_overrides)
    if not hasattr(preset.noise, "sigma"):
        raise ConfigError(f"{flag} sets noise.sigma, which preset {cfg.preset!r} (noise.model {preset.noise.model!r}) "
                          "does not have; drop it or use preset: nvcim-gaussian")
    if not sigmas or len(set(sigmas)) != len(sigmas):
        raise ConfigError(f"{flag} {sigmas}: give one or more distinct values, e.g. {flag} 0.1,0.2")
    out = []
    for s in sigmas:
        try:
            out.append(dataclasses.replace(cfg, preset_overrides={**cfg.preset_overrides, "noise.sigma": s}).validate())
        except ConfigError as exc:
            raise ConfigError(f"{flag} {s}: {exc}") from None
    return out


def check_pool_split(dataset: str, fractions: list[float]) -> None:
    """``data.pool_fractions`` splits a pool without an official test split: fail before any image is read."""
    from tsb_aihw.data.registry import pool_fractions_for

    try:
        pool_fractions_for(dataset, fractions)
    except TSBError as exc:
        raise ConfigError(f"data.pool_fractions: {exc}") from None


def check_names(preset: str, overrides: Mapping[str, JsonValue], dataset: str, model: str, device: str) -> Any:
    """Preset, dataset, model and device resolve now, not after an hour of training; returns the preset."""
    from tsb_aihw.data.registry import resolve_source
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models.registry import list_models
    from tsb_aihw.utils.device import resolve_device

    found: dict[str, Any] = {}
    for key, run in (("preset", lambda: load_preset(preset, overrides=overrides)),
                     ("data.name", lambda: resolve_source(dataset)), ("device", lambda: resolve_device(device))):
        try:
            found[key] = run()
        except TSBError as exc:  # a DataError for the dataset name is still a config problem here
            raise ConfigError(f"{key}: {exc}") from None
    if model.lower() not in list_models():
        close = difflib.get_close_matches(model.lower(), list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"model.name = {model!r} is not a registered model{hint}; valid: {', '.join(list_models())}")
    return found["preset"]


@dataclass
class RefreshDataConfig(DataConfig):
    eval_limit: Union[int, None] = spec(400, lo=1, hi=10**9)  # 8-bit periphery tiles: ~4x a digital pass


@dataclass
class RefreshConfig(StudyConfig):
    """``tsb-aihw refresh``: a study config (its own defaults: PCM, 8 chips, drift times) plus the refresh."""

    preset: str = "pcm"
    chips: int = spec(8, lo=2, hi=MAX_CHIPS, why=CHIPS_WHY)
    times: list[Union[float, str]] = spec(factory=lambda: ["1s", "1h", "1d", "1w", "1mo", "1y"])
    methods: list[str] = spec(choices=ALL_METHODS, what="method", factory=lambda: ["tsb"])
    refresh_times: list[Union[float, str]] = spec(factory=lambda: ["1d", "1mo"])
    controls: bool = True  # the re-write-without-re-training arm
    reference: bool = True  # the one-shot baseline (b) arm
    data: RefreshDataConfig = section(RefreshDataConfig)

    def validate(self) -> "RefreshConfig":
        super().validate()
        from tsb_aihw.devices import load_preset
        from tsb_aihw.evaluation.times import format_time

        if not load_preset(self.preset, overrides=self.preset_overrides).drifts:
            raise ConfigError(f"preset {self.preset!r} does not drift, so a refresh cannot change anything; use a "
                              "drifting preset such as 'pcm' or 'rram'")
        refresh, last = check_times(self.refresh_times, "refresh_times"), max(check_times(self.times))
        if min(refresh) <= 0:
            raise ConfigError("refresh_times must be > 0 s after programming (t = 0 is the normal TSB write)")
        if max(refresh) >= last:
            raise ConfigError(f"refresh at {format_time(max(refresh))} is not before the last evaluation time "
                              f"{format_time(last)}: nothing would be evaluated after it; add evaluation times "
                              "after the last refresh (times / --times)")
        return self


@dataclass
class DriftConfig:
    """``tsb-aihw drift``: one digital model (checkpoint, or trained here) on N chips per preset over time."""

    model: str = "lenet3"
    width: float = spec(1.0, lo=0.0, lo_open=True, hi=64.0)
    dataset: str = "mnist5k"
    presets: list[str] = spec(factory=lambda: ["pcm"])
    times: list[Union[float, str]] = spec(factory=lambda: list(DRIFT_TIMES))
    chips: int = spec(20, lo=2, hi=MAX_CHIPS, why=CHIPS_WHY)
    seed: int = spec(0, lo=0, hi=SEED_MAX)
    verify: str = spec("none", choices=("none", "all", "tsb"))  # tsb: only for a model holding a trained block
    checkpoint: Union[str, None] = None  # digital state dict of the registry model; None: train one
    train_epochs: int = spec(10, lo=1, hi=MAX_EPOCHS)  # noise-injection epochs when no checkpoint is given
    train_noise_std: Union[float, None] = spec(None, lo=0.0, hi=10.0)  # None: the first preset's
    eval_limit: Union[int, None] = spec(None, lo=1, hi=10**9)  # first N test images (None = the whole split)
    batch_size: int = spec(500, lo=1, hi=MAX_BATCH)
    device: str = "cpu"

    def validate(self) -> "DriftConfig":
        check(self)
        if not self.presets:
            raise ConfigError("no device presets given; pass e.g. --preset pcm --preset rram")
        seconds = check_times(self.times)
        for name in self.presets:
            preset = check_names(name, {}, self.dataset, self.model, self.device)
            preset.check_times(seconds)
        return self


C = TypeVar("C")


def config_from(cls: type[C], raw: Any, src: str, overrides: JsonObject | None = None) -> C:
    """Build and validate ``cls`` from a raw mapping plus dotted overrides (CLI flags; ``None`` = not given);
    every error message starts with ``src`` (the file name or the command)."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{src}: the top level must be a mapping of keys, got {type(raw).__name__}")
    try:
        cfg = build(cls, with_overrides(raw or {}, overrides or {}), "")
        return cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{src}: {exc}" if src else str(exc)) from None


def study_config_from_dict(data: JsonObject | None, source: str = "<dict>") -> StudyConfig:
    """Build and validate a study config; every error message starts with ``source``."""
    return config_from(StudyConfig, data, source)


def read_config_file(path: str | Path, what: str = "study config") -> JsonObject:
    """The raw mapping of a YAML config file (an empty file is an error, not 'the defaults')."""
    p = Path(path)
    raw = load_yaml_file(p, what, hint="pass --config with a YAML file (see configs/)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys, got {type(raw).__name__}")
    return raw


def load_study_config(path: str | Path, overrides: JsonObject | None = None) -> StudyConfig:
    return config_from(StudyConfig, read_config_file(path), str(path), overrides)
