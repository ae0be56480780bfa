"""The gap-improvement claim under every definition a reader might use, from the stored per-chip accuracies.

The paper claims a "> 20x" smaller accuracy gap without saying against what. The project scores it one way
(``one_reference``, :mod:`tsb_aihw.pipeline.claims`); this module scores the same chips every other plausible way,
so a reader sees how much of a headline number is the definition:

- ``one_reference``: every gap against (b)'s clean digital accuracy (the project's definition, the fair one: one
  yardstick for every method, so a weaker backbone cannot hide its own deficit);
- ``own_reference``: each method's gap against its own backbone's clean accuracy ((b) against its own; TSB against
  its early backbone's, which is lower, so TSB's gap shrinks by the early backbone's deficit);
- ``worst_chip``: the worst chip's accuracy instead of the mean (gap = reference - min over chips);
- ``p5``: the 5th-percentile chip (numpy's linear interpolation) instead of the mean;
- ``vanilla_baseline``: improvement over a network trained without noise and programmed one-shot (method ``vanilla``:
  (b)'s training at σ = 0), both gaps against that network's clean accuracy, the software accuracy a user would
  otherwise deploy; unavailable where the study did not deploy ``vanilla``.

Every ratio has a 95% CI from a PAIRED bootstrap over chips: chip i of (b) and chip i of TSB come from the same
chip seed (same index), so each resample draws chip indices once and recomputes both gaps on them; the ratio's
CI therefore carries (b)'s spread and TSB's, and their correlation. The CIs are over chips only (another chip of
the same design); the test images are fixed, so test-set sampling error is not in them.

Command: ``tsb-aihw claims results/cifar10-vgg8 results/frontier-cifar10-vgg8-sigma0.2 ...``
(:mod:`tsb_aihw.cli.claims`, on :func:`claims_for`) writes ``claims_by_definition.json`` beside each
``results.json`` / ``frontier.json`` (which are not touched).
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from tsb_aihw.errors import ConfigError, TSBError
from tsb_aihw.records import FrontierResult, MethodResult, StudyResult, TrainingMeta, read_record
from tsb_aihw.records.claims import ClaimsByDefinition, ClaimsFile, DefinitionClaim, SpeedupUnits
from tsb_aihw.utils.io import JsonObject

BASELINE = "full_noise_injection"
VANILLA = "vanilla"
RESAMPLES = 10_000
SEED = 0
PAPER_GAP = 20.0
PAPER_SPEEDUP = 5.0
CI_METHOD = ("paired percentile bootstrap over chips (chip i of (b) and of the TSB method resampled together), "
             "{resamples} resamples, numpy default_rng({seed}); a resample whose TSB gap is <= 0 has an infinite "
             "ratio")
HOLDS_RULE = "holds_20x: the ratio's 95% CI lower end > 20 (kind unbounded counts as holding)"
VANILLA_REASON = ("this study did not deploy method vanilla ((b)'s training at σ = 0, programmed one-shot); add "
                  "vanilla to its methods and re-run it (one more backbone; its other cells are reused)")

DESCRIPTIONS = {
    "one_reference": "mean gap of (b) / mean gap of TSB, both against (b)'s clean digital accuracy (the project's "
                     "definition)",
    "own_reference": "mean gap of (b) against its own clean accuracy / mean gap of TSB against its own backbone's "
                     "clean accuracy",
    "worst_chip": "gap of (b)'s worst chip / gap of TSB's worst chip, both against (b)'s clean accuracy",
    "p5": "gap of (b)'s 5th-percentile chip / gap of TSB's 5th-percentile chip, both against (b)'s clean accuracy",
    "vanilla_baseline": "mean gap of the σ = 0 trained network programmed one-shot / mean gap of TSB, both against "
                        "the σ = 0 network's clean digital accuracy",
}
NOTES = {
    "own_reference": "flatters a weak backbone: TSB's reference is its early backbone's clean accuracy, lower than "
                     "(b)'s, so the early backbone's own deficit drops out of TSB's gap",
    "worst_chip": "a bootstrap of a minimum never goes below the observed worst chip: the CI describes these chips, "
                  "not the worst chip of a larger production",
    "p5": "on 20 chips the 5th percentile lies between the worst and the second-worst chip",
}

Stat = Callable[[np.ndarray], np.ndarray]  # over the last axis
STATS: dict[str, Stat] = {
    "one_reference": lambda a: a.mean(axis=-1),
    "own_reference": lambda a: a.mean(axis=-1),
    "worst_chip": lambda a: a.min(axis=-1),
    "p5": lambda a: np.percentile(a, 5, axis=-1),
    "vanilla_baseline": lambda a: a.mean(axis=-1),
}


def _unavailable(name: str, reason: str) -> DefinitionClaim:
    return DefinitionClaim(definition=name, description=DESCRIPTIONS[name], available=False, reason=reason)


def _q(x: np.ndarray) -> list[float]:
    lo, hi = np.quantile(x, [0.025, 0.975])
    return [float(lo), float(hi)]


def bootstrap_ratio(name: str, acc_b: np.ndarray, acc_t: np.ndarray, ref_b: float, ref_t: float,
                    idx: np.ndarray, reference_source: str | None = None) -> DefinitionClaim:
    """(b)'s gap / TSB's gap under ``name``'s statistic, with the paired bootstrap over the rows of ``idx``
    (resamples x chips, the same indices for both methods)."""
    stat = STATS[name]
    gb0, gt0 = ref_b - float(stat(acc_b)), ref_t - float(stat(acc_t))
    gb, gt = ref_b - stat(acc_b[idx]), ref_t - stat(acc_t[idx])
    gb_ci, gt_ci = _q(gb), _q(gt)
    gaps = DefinitionClaim(definition=name, description=DESCRIPTIONS[name], available=True,
                           baseline_reference=ref_b, tsb_reference=ref_t, reference_source=reference_source,
                           baseline_gap=gb0, tsb_gap=gt0, baseline_gap_ci95=gb_ci, tsb_gap_ci95=gt_ci,
                           note=NOTES.get(name))
    if gb0 <= 0 or gb_ci[0] <= 0:
        return replace(gaps, kind="undefined", note=_join(gaps.note, "the baseline's gap is within Monte-Carlo "
                                                                      "error of zero: nothing to improve on"))
    if gt_ci[1] <= 0:
        return replace(gaps, kind="unbounded", point_above_20x=True, holds_20x=True)
    big = np.finfo(np.float64).max  # stands for +inf: quantiles interpolate between infinities as NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gt > 0, gb / gt, np.where(gb > 0, big, np.nan))
    lo, hi = (float(v) if v < big else np.inf for v in np.nanquantile(ratio, [0.025, 0.975]))
    if gt_ci[0] <= 0:  # TSB's gap within error of zero: the ratio has a lower end only
        return replace(gaps, kind="lower_bound", gap_improvement=lo, ci95=[lo, None],
                       point_above_20x=gt0 <= 0 or gb0 / gt0 > PAPER_GAP, holds_20x=lo > PAPER_GAP)
    value = gb0 / gt0
    return replace(gaps, kind="estimate", gap_improvement=value, ci95=[lo, hi if np.isfinite(hi) else None],
                   point_above_20x=value > PAPER_GAP, holds_20x=lo > PAPER_GAP)


def _join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


def _accuracies(m: MethodResult, column: int) -> np.ndarray:
    return np.asarray([c[column] for c in m.per_chip], dtype=np.float64)


def claims_by_definition(methods: Mapping[str, MethodResult], reference: float, labels: Sequence[str], *,
                         method: str = "tsb", early_clean: float | None = None, early_clean_source: str | None = None,
                         speedup: SpeedupUnits | None = None, resamples: int = RESAMPLES,
                         seed: int = SEED) -> ClaimsByDefinition:
    """``method``'s gap improvement over (b) under every definition, at the first time of ``labels``.

    ``reference``: (b)'s clean digital accuracy (the one reference). ``early_clean``: the early backbone's clean
    accuracy when ``methods`` has no ``backbone_early`` (a frontier budget that adopted a study's backbone), with
    ``early_clean_source`` saying where it came from. ``speedup``: the training speed-up in machine-neutral units
    (:func:`speedup_units`); without it only the wall-clock ratio is reported."""
    base, tsb = methods[BASELINE], methods[method]
    acc_b, acc_t = _accuracies(base, 0), _accuracies(tsb, 0)
    n = len(acc_b)
    if len(acc_t) != n:
        raise ConfigError(f"{BASELINE} has {n} chips and {method} {len(acc_t)}: the paired bootstrap needs the same "
                          f"chips (chip i of each from the same seed)")
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    defs: dict[str, DefinitionClaim] = {}
    for name in ("one_reference", "worst_chip", "p5"):
        defs[name] = bootstrap_ratio(name, acc_b, acc_t, reference, reference, idx)
    own_b = base.clean_accuracy if base.clean_accuracy is not None else reference
    own_t, source, reason = _own_reference(methods, method, own_b, early_clean, early_clean_source)
    defs["own_reference"] = (_unavailable("own_reference", reason) if own_t is None else
                             bootstrap_ratio("own_reference", acc_b, acc_t, own_b, own_t, idx,
                                             reference_source=source))
    defs["vanilla_baseline"] = _vanilla_baseline(methods.get(VANILLA), acc_t, idx)
    return ClaimsByDefinition(
        method=method, baseline=BASELINE, time=labels[0], chips=n, resamples=resamples, bootstrap_seed=seed,
        ci_method=CI_METHOD.format(resamples=resamples, seed=seed), holds_20x_rule=HOLDS_RULE,
        definitions={k: defs[k] for k in ("one_reference", "own_reference", "worst_chip", "p5", "vanilla_baseline")},
        training_speedup=speedup if speedup is not None else speedup_units(base, tsb),
    )


def _vanilla_baseline(vanilla: MethodResult | None, acc_t: np.ndarray, idx: np.ndarray) -> DefinitionClaim:
    """TSB against the network a user would deploy without hardware awareness, both gaps against its clean
    accuracy (paired by chip index like every other definition)."""
    if vanilla is None or vanilla.clean_accuracy is None:
        return _unavailable("vanilla_baseline", VANILLA_REASON)
    acc_v = _accuracies(vanilla, 0)
    if len(acc_v) != len(acc_t):
        raise ConfigError(f"{VANILLA} has {len(acc_v)} chips and the TSB method {len(acc_t)}: the paired bootstrap "
                          "needs the same chips")
    return bootstrap_ratio("vanilla_baseline", acc_v, acc_t, vanilla.clean_accuracy, vanilla.clean_accuracy, idx)


def _own_reference(methods: Mapping[str, MethodResult], method: str, own_b: float, early_clean: float | None,
                   early_clean_source: str | None) -> tuple[float | None, str | None, str]:
    """The clean accuracy of ``method``'s own backbone, where it came from, or why it is not known."""
    backbone = methods[method].backbone
    if backbone == "full":
        return own_b, None, ""
    if backbone != "early":
        return None, None, f"{method} deploys backbone {backbone!r}, whose clean accuracy is not recorded"
    early = methods.get("backbone_early")
    if early is not None and early.clean_accuracy is not None:
        return early.clean_accuracy, None, ""
    if early_clean is not None:
        return early_clean, early_clean_source, ""
    return None, None, ("this result holds no clean accuracy of the early backbone (method backbone_early was not "
                        "deployed; a frontier budget whose early backbone was trained here rather than adopted "
                        "from a study): evaluate that checkpoint's clean accuracy to fill it")


# --- training speed-up in image-passes -----------------------------------------------------------------------

_POOL = re.compile(r"(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?)/(\d+(?:\.\d+)?) split of the ([\d,]+) images")


def train_images_from_note(split_note: str) -> int | None:
    """Size of the training split from a dataset's split note (a seeded train/val/test split, in percent, of N
    images: ``data.pool_fractions``), else None."""
    m = _POOL.search(split_note)
    if not m:
        return None
    from tsb_aihw.data.splits import pool_split

    fractions = (float(m.group(1)) / 100, float(m.group(2)) / 100, float(m.group(3)) / 100)
    n = int(m.group(4).replace(",", ""))
    return len(pool_split(np.zeros(n, dtype=np.int64), seed=0, fractions=fractions).parts["train"])  # sizes: n only


@dataclass(frozen=True)
class EpochBudget:
    """The epochs and block images a config gave, which training image-passes are counted from (the training
    meta's epochs win where it records them)."""

    full_epochs: int
    early_epochs: int | None
    block_epochs: int = 0
    block_images: int | None = None  # None: the whole training set

    @classmethod
    def of(cls, config: JsonObject) -> EpochBudget:
        """From a study's or a frontier's config as written (``to_dict()``)."""
        backbone, block = config["backbone"], config.get("block", {})
        return cls(full_epochs=backbone["full_epochs"], early_epochs=backbone["early_epochs"],
                   block_epochs=block.get("epochs", 0), block_images=block.get("calibration_images"))


def speedup_units(base: MethodResult, tsb: MethodResult, *, budget: EpochBudget | None = None,
                  training: Mapping[str, TrainingMeta] | None = None,
                  train_images: int | None = None) -> SpeedupUnits:
    """Wall-clock speed-up (as ``training_speedup``) and, where the epoch budget, training meta and training-set
    size are known, the speed-up in training image-passes and against (b)'s epochs to within 0.5 pp of its final
    validation accuracy."""
    wall = base.train_time_s / tsb.train_time_s if tsb.train_time_s > 0 else None
    head = SpeedupUnits(wall_clock=wall, baseline_s=base.train_time_s, tsb_s=tsb.train_time_s,
                        holds_5x_wall_clock=None if wall is None else wall > PAPER_SPEEDUP)
    if budget is None or training is None or train_images is None:
        return replace(head, reason="the config, training meta or training-set size was not given")
    full_meta, early_meta = training.get("backbone_full"), training.get("backbone_early")
    full_ep = int(full_meta.epochs if full_meta and full_meta.epochs is not None else budget.full_epochs)
    early = early_meta.epochs if early_meta and early_meta.epochs is not None else budget.early_epochs
    if tsb.backbone != "early":
        early_ep = full_ep
    elif early is None:  # a frontier budget without its early backbone's training meta
        return replace(head, reason="the early backbone's epochs are not recorded")
    else:
        early_ep = int(early)
    block_ep = int(budget.block_epochs) if tsb.block == "chip" else 0
    block_imgs = budget.block_images or train_images
    base_passes = full_ep * train_images
    backbone_passes, block_passes = early_ep * train_images, block_ep * int(block_imgs)
    tsb_passes = backbone_passes + block_passes
    ratio = base_passes / tsb_passes
    to_final, ratio_final = None, None
    accs = full_meta.val_accuracies() if full_meta else None
    if accs:
        to_final = next(i + 1 for i, a in enumerate(accs) if a >= accs[-1] - 0.005)
        ratio_final = to_final * train_images / tsb_passes
    return replace(
        head, image_passes=ratio, baseline_image_passes=base_passes, tsb_image_passes=tsb_passes,
        tsb_backbone_image_passes=backbone_passes, tsb_block_image_passes_per_chip=block_passes,
        train_images=train_images, block_images=int(block_imgs) if block_ep else None, baseline_epochs=full_ep,
        early_epochs=early_ep, block_epochs=block_ep, baseline_epochs_to_final_0p5pp=to_final,
        image_passes_to_final_0p5pp=ratio_final, holds_5x_image_passes=ratio > PAPER_SPEEDUP,
        note="image-pass = one image through one training step; TSB's block passes are per chip (each chip trains "
             "its own block) and cost at most a backbone pass (frozen backbone, cached prefix); the 0.5 pp figure "
             "stops (b)'s one-cycle schedule early, which is not what a shorter schedule would reach",
    )


# --- re-assembly from committed results ----------------------------------------------------------------------

def _adopted_early_clean(training: Mapping[str, TrainingMeta], tsb: MethodResult,
                         root: Path) -> tuple[float | None, str | None]:
    """The early backbone's clean accuracy from the study it was adopted from, when that study programmed the
    very same chips (its backbone_early chip fingerprints equal this TSB's): (value, source) or (None, None)."""
    early_meta = training.get("backbone_early")
    src = early_meta.adopted_from if early_meta else None
    if not src:
        return None, None
    parts = Path(src).parts
    rel = Path(*parts[parts.index("results"):]) if "results" in parts else Path(src)
    results = (root / rel).parent / "results.json"
    if not results.is_file():
        return None, None
    study = read_record(StudyResult, results)
    early = study.methods.get("backbone_early")
    if early is None or early.clean_accuracy is None or early.chips != tsb.chips:
        return None, None
    return early.clean_accuracy, f"{rel.parent / 'results.json'} (backbone_early, same chip fingerprints)"


def _check_headline_column(methods: Mapping[str, MethodResult], label: str, where: str) -> None:
    for key, m in methods.items():
        mean = float(np.mean([c[0] for c in m.per_chip]))
        if abs(mean - m.accuracy[label].mean) > 1e-9:
            raise TSBError(f"{where}: {key}'s first per-chip column (mean {mean}) is not its {label} accuracy "
                           f"({m.accuracy[label].mean}); the per-chip numbers do not match the summaries")


def _source(path: Path, root: Path) -> str:
    return str(path.relative_to(root) if path.is_relative_to(root) else path)


def _sigma(config: JsonObject) -> float | None:
    """The config's ``noise.sigma`` override, the head of the claims table (None: the preset's own)."""
    return config.get("preset_overrides", {}).get("noise.sigma")


def for_study(path: Path, root: Path) -> ClaimsFile:
    r = read_record(StudyResult, path)
    n = train_images_from_note(r.dataset.split_note)
    su = speedup_units(r.methods[BASELINE], r.methods["tsb"], budget=EpochBudget.of(r.config), training=r.training,
                       train_images=n)
    c = claims_by_definition(r.methods, r.reference_accuracy, r.time_labels, speedup=su)
    return ClaimsFile(source=_source(path, root), model=r.model, sigma=_sigma(r.config), preset=r.preset.name,
                      reference_accuracy=r.reference_accuracy, methods={"tsb": c})


def for_frontier(path: Path, root: Path) -> ClaimsFile:
    f = read_record(FrontierResult, path)
    label = next(iter(f.curves.values()))[0].time
    budgets: dict[str, dict[str, ClaimsByDefinition]] = {}
    for b, s in f.studies.items():
        _check_headline_column(s.methods, label, f"{path} budget {b}")
        per: dict[str, ClaimsByDefinition] = {}
        for key in (k for k in s.methods if k in ("tsb", "tsb_bn", "tsb_full")):
            m = s.methods[key]
            early, source = _adopted_early_clean(s.training, m, root) if m.backbone == "early" else (None, None)
            train_n = _train_images_of_adopted(s.training, root)
            su = speedup_units(s.methods[BASELINE], m, budget=_budget(f.config, s.training), training=s.training,
                               train_images=train_n)
            per[key] = claims_by_definition(s.methods, f.reference_accuracy, [label], method=key, early_clean=early,
                                            early_clean_source=source, speedup=su)
        budgets[b] = per
    return ClaimsFile(source=_source(path, root), model=f.model, sigma=_sigma(f.config), preset=f.preset,
                      reference_accuracy=f.reference_accuracy, budgets=budgets)


def _budget(cfg: JsonObject, training: Mapping[str, TrainingMeta]) -> EpochBudget:
    """The frontier's epoch budget with this budget's early epochs (from its training meta)."""
    early_meta = training.get("backbone_early")
    return replace(EpochBudget.of(cfg), early_epochs=early_meta.epochs if early_meta else None)


def _train_images_of_adopted(training: Mapping[str, TrainingMeta], root: Path) -> int | None:
    """A frontier file records no dataset split note: take the one of the study its (b) was adopted from."""
    full_meta = training.get("backbone_full")
    src = full_meta.adopted_from if full_meta else None
    if not src:
        return None
    parts = Path(src).parts
    rel = Path(*parts[parts.index("results"):]) if "results" in parts else Path(src)
    results = (root / rel).parent / "results.json"
    if not results.is_file():
        return None
    return train_images_from_note(read_record(StudyResult, results).dataset.split_note)


def claims_for(raw: str | Path, root: Path) -> tuple[Path, ClaimsFile]:
    """(where ``claims_by_definition.json`` goes, what it holds) for a study's ``results.json``, a
    ``frontier.json``, or the folder holding one; ``root`` resolves the adopted-from paths they record."""
    path = Path(raw).resolve()
    if path.is_dir():
        path = next((path / n for n in ("results.json", "frontier.json") if (path / n).is_file()), path)
    if path.name == "results.json" and path.is_file():
        out = for_study(path, root)
    elif path.name == "frontier.json" and path.is_file():
        out = for_frontier(path, root)
    else:
        raise ConfigError(f"{raw}: holds no results.json or frontier.json; give a study's or a frontier's results "
                          "folder (e.g. results/cifar10-vgg8-sigma0.2)")
    return path.parent / "claims_by_definition.json", out


if __name__ == "__main__":  # the spelling before the subcommand, which committed files' "command" still name
    print("python -m tsb_aihw.pipeline.definitions is now `tsb-aihw claims PATH... [--root DIR]` (same arguments, "
          "same output)", file=sys.stderr)
    sys.exit(2)
