"""The gap-improvement claim under every definition (issue 31): paired bootstrap, own reference, worst chip, p5,
the unavailable definitions, the image-pass speed-up and the committed ``claims_by_definition.json`` files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tsb_aihw.evaluation.stats import summaries_by_time
from tsb_aihw.pipeline.claims import compute_claims
from tsb_aihw.pipeline.definitions import (
    EpochBudget,
    bootstrap_ratio,
    claims_by_definition,
    for_study,
    speedup_units,
    train_images_from_note,
)
from tsb_aihw.records import ClaimsByDefinition, MethodResult, TrainingMeta, load_record

ROOT = Path(__file__).resolve().parents[1]


def method(acc: list[float], reference: float, *, backbone: str = "full", block: str | None = None,
           clean: float | None = None, train_s: float = 10.0) -> MethodResult:
    """A method's result on ``acc`` (one accuracy per chip), built as a written one is read back."""
    per_chip = [[a] for a in acc]
    summaries = {"accuracy": summaries_by_time(per_chip, ["0s"]),
                 "gap": summaries_by_time([[reference - a] for a in acc], ["0s"])}
    raw = dict(label=backbone, backbone=backbone, block=block, verify="none", selection=None, curve=None,
               verified_fraction=0.0, cost={"pulses": 1, "devices": 1}, clean_accuracy=clean, train_time_s=train_s,
               per_chip=per_chip, chips=[f"c{i}" for i in range(len(acc))],
               inference_cost={"energy_j": 0.0, "latency_s": 0.0, "tile_mvms": 0},
               **{k: {t: v.to_dict() for t, v in d.items()} for k, d in summaries.items()})
    return load_record(MethodResult, raw, "test method")


# A hand-computed example: reference (b)'s clean accuracy 0.80, the early backbone's clean accuracy 0.70.
REF, EARLY = 0.80, 0.70
ACC_B = [0.70, 0.72, 0.74, 0.66, 0.705]  # mean 0.705, min 0.66
ACC_T = [0.68, 0.69, 0.67, 0.70, 0.685]  # mean 0.685, min 0.67


def example(with_early: bool = True) -> dict[str, MethodResult]:
    ms = {"full_noise_injection": method(ACC_B, REF, clean=REF, train_s=50.0),
          "tsb": method(ACC_T, REF, backbone="early", block="chip", train_s=10.0)}
    if with_early:
        ms["backbone_early"] = method([0.5] * 5, REF, backbone="early", clean=EARLY)
    return ms


def test_definitions_on_a_hand_computed_example() -> None:
    c = claims_by_definition(example(), REF, ["0s"]).definitions
    one, own, worst, p5 = c["one_reference"], c["own_reference"], c["worst_chip"], c["p5"]
    # one reference: (0.80 - 0.705) / (0.80 - 0.685)
    assert one.gap_improvement == pytest.approx(0.095 / 0.115) and one.kind == "estimate"
    # own reference: (b) against its own 0.80, TSB against its early backbone's 0.70: 0.095 / 0.015
    assert own.tsb_reference == EARLY and own.baseline_reference == REF
    assert own.tsb_gap == pytest.approx(0.015) and own.gap_improvement == pytest.approx(0.095 / 0.015)
    # worst chip: (0.80 - 0.66) / (0.80 - 0.67)
    assert worst.baseline_gap == pytest.approx(0.14) and worst.tsb_gap == pytest.approx(0.13)
    assert worst.gap_improvement == pytest.approx(0.14 / 0.13)
    # p5 (linear interpolation at position 0.05 * 4 = 0.2): sorted b 0.66, 0.70 -> 0.668; sorted t 0.67, 0.68 -> 0.672
    assert p5.gap_improvement == pytest.approx((0.80 - 0.668) / (0.80 - 0.672))
    for d in (one, own, worst, p5):
        assert d.available and d.ci95 is not None and d.ci95[0] is not None and d.ci95[1] is not None
        assert d.ci95[0] <= d.gap_improvement <= d.ci95[1] + 1e-12
        assert d.holds_20x is False and d.point_above_20x is False


def test_own_reference_of_a_full_backbone_method_is_the_one_reference() -> None:
    ms = example()
    ms["tsb_full"] = method(ACC_T, REF, backbone="full", block="chip")
    c = claims_by_definition(ms, REF, ["0s"], method="tsb_full").definitions
    assert c["own_reference"].gap_improvement == pytest.approx(c["one_reference"].gap_improvement)


def test_unavailable_definitions_say_why() -> None:
    c = claims_by_definition(example(with_early=False), REF, ["0s"]).definitions
    own, vanilla = c["own_reference"], c["vanilla_baseline"]
    assert not own.available and own.gap_improvement is None and "backbone_early" in (own.reason or "")
    assert not vanilla.available and vanilla.gap_improvement is None and "σ = 0" in (vanilla.reason or "")
    assert "did not deploy method vanilla" in (vanilla.reason or "")
    # an early clean accuracy taken from elsewhere (an adopted study) fills it and says where from
    got = claims_by_definition(example(with_early=False), REF, ["0s"], early_clean=EARLY,
                               early_clean_source="results/x/results.json").definitions["own_reference"]
    assert got.available and got.gap_improvement == pytest.approx(0.095 / 0.015)
    assert got.reference_source == "results/x/results.json"


def test_vanilla_baseline_by_hand() -> None:
    """Both gaps against the σ = 0 network's clean accuracy (0.90): (0.90 - mean 0.40) / (0.90 - mean 0.685)."""
    ms = example() | {"vanilla": method([0.3, 0.5, 0.4, 0.35, 0.45], REF, backbone="vanilla", clean=0.90)}
    v = claims_by_definition(ms, REF, ["0s"]).definitions["vanilla_baseline"]
    assert v.available and v.baseline_reference == v.tsb_reference == 0.90
    assert v.baseline_gap == pytest.approx(0.5) and v.tsb_gap == pytest.approx(0.215)
    assert v.gap_improvement == pytest.approx(0.5 / 0.215) and v.ci95[0] <= v.gap_improvement <= v.ci95[1]


def test_paired_bootstrap_resamples_both_gaps_together() -> None:
    """Each chip's TSB gap is exactly a tenth of its (b) gap: every paired resample has ratio 10, so the CI is
    [10, 10]; an unpaired resampling (TSB's chips reordered) would give a wide one."""
    rng = np.random.default_rng(1)
    gap_b = 0.10 + 0.03 * rng.standard_normal(20)
    acc_b, acc_t = REF - gap_b, REF - gap_b / 10
    idx = np.random.default_rng(0).integers(0, 20, size=(4000, 20))
    paired = bootstrap_ratio("one_reference", acc_b, acc_t, REF, REF, idx)
    assert paired.gap_improvement == pytest.approx(10.0)
    assert paired.ci95 == pytest.approx([10.0, 10.0])
    assert paired.holds_20x is False
    shuffled = bootstrap_ratio("one_reference", acc_b, acc_t[::-1].copy(), REF, REF, idx)
    assert shuffled.gap_improvement == pytest.approx(10.0)  # same means ...
    assert shuffled.ci95[1] - shuffled.ci95[0] > 1.0  # ... but the pairing is gone


def test_paired_bootstrap_ci_covers_the_known_ratio() -> None:
    """Synthetic chips from a population whose mean gaps are 0.10 (b) and 0.004 (TSB): ratio 25. The 95% CI covers
    it in about 95% of 200 seeded studies of 20 chips (a percentile bootstrap on 20 chips runs a little under)."""
    true_ratio, covered, trials = 0.10 / 0.004, 0, 200
    idx = np.random.default_rng(0).integers(0, 20, size=(2000, 20))
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        chip = rng.standard_normal(20)  # the shared chip effect: a bad chip is bad for both
        gap_b = 0.10 + 0.02 * chip + 0.01 * rng.standard_normal(20)
        gap_t = 0.004 + 0.0008 * chip + 0.0004 * rng.standard_normal(20)
        c = bootstrap_ratio("one_reference", REF - gap_b, REF - gap_t, REF, REF, idx)
        assert c.kind == "estimate" and c.ci95 is not None and c.ci95[1] is not None
        covered += c.ci95[0] <= true_ratio <= c.ci95[1]
    assert 0.85 <= covered / trials <= 0.99, covered


def test_ratio_kinds_and_the_20x_rule() -> None:
    idx = np.random.default_rng(0).integers(0, 8, size=(2000, 8))
    acc_b = np.array([0.70, 0.72, 0.68, 0.71, 0.69, 0.70, 0.73, 0.67])
    at_ref = bootstrap_ratio("one_reference", acc_b, np.full(8, 0.81), 0.80, 0.80, idx)
    assert at_ref.kind == "unbounded" and at_ref.holds_20x is True and at_ref.gap_improvement is None
    around = bootstrap_ratio("one_reference", acc_b, 0.80 + np.array([0.01, -0.01] * 4), 0.80, 0.80, idx)
    assert around.kind == "lower_bound" and around.ci95 is not None and around.ci95[1] is None
    assert around.gap_improvement == around.ci95[0]
    no_gap = bootstrap_ratio("one_reference", 0.80 + np.array([0.01, -0.01] * 4), acc_b, 0.80, 0.80, idx)
    assert no_gap.kind == "undefined" and no_gap.gap_improvement is None and no_gap.holds_20x is None
    # 30x with a CI above 20 holds; 30x whose CI reaches below 20 does not (the rule is the CI's lower end)
    gap_b = 0.10 + 0.01 * np.arange(8) / 8
    tight = bootstrap_ratio("one_reference", REF - gap_b, REF - gap_b / 30, REF, REF, idx)
    assert tight.holds_20x is True and tight.point_above_20x is True
    noisy_t = gap_b / 30 * np.array([0.2, 1.8, 0.3, 1.7, 0.25, 1.75, 0.5, 1.5])
    loose = bootstrap_ratio("one_reference", REF - gap_b, REF - noisy_t, REF, REF, idx)
    assert loose.ci95 is not None and loose.ci95[0] < 20 and loose.holds_20x is False


def test_speedup_in_image_passes_by_hand() -> None:
    assert train_images_from_note("seeded stratified 70/10/20 split of the 50,000 images of x.tar.gz (seed 0)") \
        == 35000
    assert train_images_from_note("the official training split") is None
    ms = example()
    history = [{"epoch": e, "val_acc": a} for e, a in enumerate([0.5, 0.7, 0.796, 0.80], 1)]
    su = speedup_units(ms["full_noise_injection"], ms["tsb"],
                       budget=EpochBudget(full_epochs=25, early_epochs=5, block_epochs=5, block_images=5000),
                       training={"backbone_full": TrainingMeta(train_time_s=5.0, epochs=25, history=history),
                                 "backbone_early": TrainingMeta(train_time_s=1.0, epochs=5)}, train_images=35000)
    assert su.wall_clock == pytest.approx(5.0) and su.holds_5x_wall_clock is False
    assert su.baseline_image_passes == 25 * 35000 and su.tsb_image_passes == 5 * 35000 + 5 * 5000
    assert su.image_passes == pytest.approx(875000 / 200000) and su.holds_5x_image_passes is False
    assert su.baseline_epochs_to_final_0p5pp == 3  # 0.796 >= 0.80 - 0.005
    assert su.image_passes_to_final_0p5pp == pytest.approx(3 * 35000 / 200000)
    bare = speedup_units(ms["full_noise_injection"], ms["tsb"])
    assert bare.image_passes is None and bare.reason and bare.wall_clock == pytest.approx(5.0)


def test_compute_claims_adds_claims_by_definition_and_keeps_its_keys() -> None:
    c = compute_claims(example(), ["0s"]).to_dict()
    assert set(c) == {"paper", "accuracy_gap_improvement", "training_speedup", "verified_fraction",
                      "claims_by_definition"}
    by_def = load_record(ClaimsByDefinition, c["claims_by_definition"], "claims_by_definition")
    one = by_def.definitions["one_reference"]
    assert one.gap_improvement == pytest.approx(c["accuracy_gap_improvement"]["value"])
    assert by_def.definitions["own_reference"].gap_improvement == pytest.approx(0.095 / 0.015)
    assert by_def.to_dict() == c["claims_by_definition"]  # written and read back unchanged


def test_committed_claims_by_definition_are_what_the_command_writes() -> None:
    path = ROOT / "results" / "cifar10-vgg8-sigma0.2" / "results.json"
    committed = ROOT / "results" / "cifar10-vgg8-sigma0.2" / "claims_by_definition.json"
    if not committed.is_file():
        pytest.skip("no committed claims_by_definition.json")
    want = json.loads(committed.read_text())
    got = json.loads(json.dumps(for_study(path, ROOT).to_dict(), sort_keys=True))
    want.pop("command")
    assert got == want
    study = json.loads(path.read_text())
    one = got["methods"]["tsb"]["definitions"]["one_reference"]
    assert one["gap_improvement"] == pytest.approx(study["claims"]["accuracy_gap_improvement"]["value"])
