"""The TSB flow and its baselines: each step alone, chips shared across methods, resume, claims, the demo."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from tsb_aihw.analog import read_back, to_analog
from tsb_aihw.devices import load_preset, tile_programming_stats
from tsb_aihw.errors import ConfigError
from tsb_aihw.analog.chip import Chip, named_analog_tiles
from tsb_aihw.pipeline.claims import compute_claims, gap_ratio
from tsb_aihw.pipeline.config import load_study_config, study_config_from_dict
from tsb_aihw.pipeline.study import run_study
from tsb_aihw.pipeline.tasks import StudyContext
from tsb_aihw.stack import PINS
from tsb_aihw.pipeline.trained import train_chip_block
from tsb_aihw.evaluation.stats import Summary
from tsb_aihw.records import MethodResult
from tsb_aihw.records.study import InferenceCostSummary

from helpers import tiny_study

TINY = tiny_study(methods=["full_noise_injection", "full_verify", "selective_verify", "tsb"],
                  selective={"methods": ["magnitude"], "fraction_multipliers": [1.0]})


class _Study:
    """The pieces of one tiny study the tests below poke at: config, data, trained models, preset."""

    def __init__(self, ctx: StudyContext):
        self.cfg, self.data, self.preset, self.models = ctx.cfg, ctx.data, ctx.preset, ctx.models
        self.backbone, self.tsb_model = ctx.models.backbone, ctx.models.tsb_model


def program_chip(model, chip_seed: int) -> Chip:
    """Program ``model`` as chip ``chip_seed`` of a study seeded 0 (the one chip model)."""
    chip = Chip(model, None, 0, chip_seed)
    chip.program()
    return chip


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> _Study:
    return _Study(StudyContext(study_config_from_dict(TINY), tmp_path_factory.mktemp("study"), progress=False))


def _tile_weights(model) -> dict[tuple[str, int], torch.Tensor]:
    return {(n, j): tile.tile.get_weights().clone() for n, j, _l, tile in named_analog_tiles(model)}


def test_same_chip_seed_gives_same_one_shot_noise_across_methods(study: _Study) -> None:
    """Baselines share chips: cells left one-shot see identical noise whatever is verified elsewhere."""
    full = study.backbone("full")
    one_shot = to_analog(full, study.preset, verify="none").eval()
    masks = {n: torch.zeros_like(m.weight, dtype=torch.bool) for n, m in full.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    first = next(iter(masks))
    masks[first].view(-1)[:50] = True  # verify 50 weights of the first layer only
    selective = to_analog(full, study.preset, verify=masks).eval()
    program_chip(one_shot, chip_seed=11)
    program_chip(selective, chip_seed=11)
    a, b = _tile_weights(one_shot), _tile_weights(selective)
    for key in a:
        if key[0] == first:
            diff = (a[key] != b[key]).reshape(-1)
            assert diff.sum() > 0 and not diff[50:].any()  # only the verified cells changed
        else:
            assert torch.equal(a[key], b[key])
    program_chip(one_shot, chip_seed=12)
    assert any(not torch.equal(w, _tile_weights(one_shot)[k]) for k, w in a.items())  # another chip differs


def test_read_back_equals_programmed_weights_without_read_noise(study: _Study) -> None:
    """nvcim-gaussian has no read noise: the read-back is exactly the chip's programmed effective weights."""
    analog = to_analog(study.tsb_model(), study.preset, verify="tsb").eval()
    program_chip(analog, chip_seed=5)
    w1 = read_back(analog, t=0.0)
    w2 = read_back(analog, t=0.0, n_reads=3)
    digital = dict(study.tsb_model().named_modules())
    for name, w in w1.items():
        assert torch.allclose(w, w2[name])
        if not name.startswith("tsb"):
            assert not torch.allclose(w, digital[name].weight)  # the chip is noisy


def test_read_back_of_pcm_differs_only_by_read_noise(study: _Study) -> None:
    pcm = load_preset("pcm")
    analog = to_analog(study.backbone("full"), pcm, verify="none").eval()
    program_chip(analog, chip_seed=5)
    r1, r2 = read_back(analog, t=1.0), read_back(analog, t=1.0)
    for name in r1:
        rel = ((r1[name] - r2[name]).norm() / r1[name].norm()).item()
        assert 0 < rel < 0.3  # two reads differ (read noise), but only by a fraction of the weights


def test_chip_block_trains_and_backbone_stays_bit_identical(study: _Study) -> None:
    model = study.tsb_model()
    before = copy.deepcopy(model.state_dict())
    analog = to_analog(model, study.preset, verify="tsb").eval()
    chip = program_chip(analog, chip_seed=7)
    backbone_tiles = {k: v for k, v in _tile_weights(analog).items() if not k[0].startswith("tsb")}
    weight, seconds = train_chip_block(study.models, model, read_back(analog), seed=1)
    assert seconds > 0 and weight.abs().sum() > 0  # the block learned something
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the shared digital model is untouched
    chip.write_block(weight)
    after = _tile_weights(analog)
    for k, v in backbone_tiles.items():
        assert torch.equal(after[k], v)  # deploying the block re-programs only its own tile
    tsb_tile = next(t for n, _j, _l, t in named_analog_tiles(analog) if n.startswith("tsb"))
    stats = tile_programming_stats(tsb_tile)
    assert stats["verified_cells"] == weight.numel()
    tol = study.preset.write_verify.tolerance
    programmed = read_back(analog, t=None)["tsb.conv"]
    scale = weight.abs().max()
    assert ((programmed - weight).abs() <= tol * scale * 1.0001).float().mean() >= 1 - stats["failed_cells"] / weight.numel()


def _gap(mean: float, low: float, high: float) -> Summary:
    return Summary(mean=mean, std=0.01, n=5, ci95_low=low, ci95_high=high, min=low, max=high)


def test_gap_ratio_reports_lower_bound_within_mc_error() -> None:
    base = _gap(0.2, 0.15, 0.25)
    assert gap_ratio(base, _gap(0.02, 0.01, 0.03)).kind == "estimate"
    lb = gap_ratio(base, _gap(0.005, -0.01, 0.02))
    assert lb.kind == "lower_bound" and lb.value == pytest.approx(10.0)
    assert gap_ratio(base, _gap(-0.02, -0.03, -0.01)).kind == "unbounded"
    assert gap_ratio(_gap(0.01, -0.01, 0.03), base).kind == "undefined"


def test_claims_use_one_reference_and_pulse_ratio() -> None:
    acc = _gap(0.9, 0.89, 0.91)

    def method(gap, pulses, cells, t, frac):
        return MethodResult(label="m", backbone="full", block=None, verify="none", selection=None, curve=None,
                            verified_fraction=frac, cost={"pulses": pulses, "devices": cells}, clean_accuracy=None,
                            train_time_s=t, accuracy={"0s": acc}, gap={"0s": gap}, per_chip=[[0.9]] * 5,
                            chips=[f"c{i}" for i in range(5)],
                            inference_cost=InferenceCostSummary(energy_j=0.0, latency_s=0.0, tile_mvms=0))

    methods = {
        "full_noise_injection": method(_gap(0.1, 0.08, 0.12), 100, 100, 50.0, 0.0),
        "full_verify": method(_gap(0.0, -0.01, 0.01), 500, 100, 50.0, 1.0),
        "tsb": method(_gap(0.02, 0.01, 0.03), 110, 100, 10.0, 0.003),
    }
    c = compute_claims(methods, ["0s"])
    assert c.accuracy_gap_improvement.value == pytest.approx(5.0)
    assert c.training_speedup.value == pytest.approx(5.0)
    assert c.mapping_cost_reduction.value == pytest.approx(500 / 110)
    assert c.mapping_cost_reduction.verify_overhead_reduction == pytest.approx(40.0)
    assert c.verified_fraction.below_paper_bound


@pytest.mark.parametrize("bad, message", [
    ({"chips": 1}, "at least 2 chips"),
    ({"times": []}, "times is empty"),
    ({"methods": ["tsb", "magic"]}, "unknown method"),
    ({"backbone": {"full_epochs": 2, "early_epochs": 5}}, "early convergence"),
    ({"blok": {}}, "did you mean 'block'"),
    ({"chips": "many"}, "wrong type"),
])
def test_bad_study_config_names_the_problem(bad, message) -> None:
    with pytest.raises(ConfigError, match=message):
        study_config_from_dict(bad)


def test_yaml_config_errors_name_the_file(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("chips: [oops\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_study_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_study_config(tmp_path / "missing.yaml")


def test_study_writes_results_and_resumes_without_recomputing(tmp_path, monkeypatch) -> None:
    cfg = study_config_from_dict(TINY)
    res = run_study(cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["claims"]) >= {"accuracy_gap_improvement", "training_speedup", "verified_fraction",
                                    "mapping_cost_reduction"}
    assert saved["config"]["seed"] == 3 and saved["provenance"]["versions"]["aihwkit"] == PINS["aihwkit"]
    assert saved["methods"]["full_verify"]["verified_fraction"] == 1.0
    costs = {k: saved["methods"][k]["inference_cost"] for k in ("tsb", "full_noise_injection")}
    assert costs["tsb"]["tile_mvms"] > costs["full_noise_injection"]["tile_mvms"] > 0  # the block's MVMs at its sites
    assert costs["tsb"]["energy_j"] > costs["full_noise_injection"]["energy_j"] > 0
    assert costs["tsb"]["priced_by"]["adc"]  # every figure names the model that priced it
    assert 0 < saved["methods"]["tsb"]["verified_fraction"] < 0.05
    for m in saved["methods"].values():
        assert len(m["per_chip"]) == 2
    assert (tmp_path / "methods.csv").exists() and (tmp_path / "chips.csv").exists()

    def boom(*a, **k):
        raise AssertionError("a finished cell was recomputed")

    monkeypatch.setattr("tsb_aihw.pipeline.tasks.deploy_cell", boom)
    again = run_study(cfg, tmp_path, progress=False)
    assert again.methods["tsb"].per_chip == res.methods["tsb"].per_chip


@pytest.mark.slow
def test_demo_quick_writes_every_output(tmp_path) -> None:
    """``tsb-aihw demo --quick``: results.json with claims, CSVs, plots and the report, end to end."""
    from tsb_aihw.cli.main import main

    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    nvcim, pcm = (load_preset(n).folder_name for n in ("nvcim-gaussian", "pcm"))
    assert set(res["studies"]) == {nvcim, pcm} and nvcim.startswith("nvcim-gaussian-")
    for name in ("results.json", "methods.csv", "report.md", f"{nvcim}/accuracy_vs_verified_fraction.png",
                 f"{pcm}/accuracy_vs_time.png", f"{pcm}/accuracy_vs_time.pdf"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "> 20x" in report and "< 0.4%" in report and "> 5x" in report
    assert "- convergence of (b): its last 1 of " in report  # the quick run's (b) has a validation history


def test_cli_reports_bad_input_with_exit_2(tmp_path, capsys) -> None:
    from tsb_aihw.cli.main import main

    assert main(["demo", "--quick", "--chips", "0", "--out", str(tmp_path)]) == 2
    assert "chips" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 2


def test_chip_calibrates_its_adc_only_when_the_preset_says(study: _Study) -> None:
    from torch.utils.data import DataLoader, Subset

    loader = DataLoader(Subset(study.data.train.dataset, range(64)), 32)
    plain = load_preset("pcm")
    calibrated = load_preset("pcm", overrides={"adc_calibration.mode": "per_tile"})
    for preset, expect in ((plain, None), (calibrated, "per_tile")):
        chip = Chip(to_analog(study.backbone("full"), preset, verify="none").eval(), preset, 0, 1)
        digest = chip.program()
        cal = chip.calibrate_adc(loader)
        assert (cal is None) if expect is None else (cal.mode == expect and cal.tiles)
        assert chip.digest() == digest  # calibration sets ADC ranges, never the programmed weights


def test_study_trains_with_a_recipe_and_refuses_a_bad_one(tmp_path) -> None:
    recipe = {"optimizer": "sgd", "lr": 0.05, "schedule": "onecycle", "augment": "none", "label_smoothing": 0.1}
    cfg = study_config_from_dict(tiny_study(methods=["full_noise_injection"], backbone={"full_epochs": 1,
                                                                                       "early_epochs": 1,
                                                                                       "recipe": recipe}))
    res = run_study(cfg, tmp_path / "r", progress=False)
    history = res.training["backbone_full"].history
    assert history and (res.methods["full_noise_injection"].clean_accuracy or 0) > 0.15  # 10 classes: chance 0.1
    with pytest.raises(ConfigError, match="backbone.recipe: .*lr"):
        study_config_from_dict(tiny_study(backbone={"recipe": {"lr": -1}}))
    with pytest.raises(ConfigError, match="unknown key 'backbone.recipe.lrr'"):
        study_config_from_dict(tiny_study(backbone={"recipe": {"lrr": 0.1}}))


def test_calibration_images_train_every_block_on_one_fixed_cached_subset(tmp_path) -> None:
    """block.calibration_images: a seeded subset of the configured size, un-augmented, the same for every
    block; the cached training gives the block that uncached training on that subset gives."""
    from tsb_aihw.models import get_tsb
    from tsb_aihw.training import train_block
    from tsb_aihw.training.block_cache import build_block_cache

    raw = tiny_study(block={"epochs": 2, "calibration_images": 96})
    ctx = StudyContext(study_config_from_dict(raw), tmp_path / "a", progress=False)
    models = ctx.models
    calib = models.blocks.calibration_set()
    assert len(calib) == 96 and not calib.dataset.info.augment
    again = StudyContext(study_config_from_dict(raw), tmp_path / "b", progress=False).models.blocks.calibration_set()
    assert calib.indices == again.indices  # seeded by the study, not by the process
    other = StudyContext(study_config_from_dict(raw | {"seed": 4}), tmp_path / "c", progress=False)
    assert calib.indices != other.models.blocks.calibration_set().indices

    twin = copy.deepcopy(models.tsb_model())
    res = models.blocks.fit_block(twin, seed=5, loader_keys=("t",))
    assert res.wall_time_s > 0
    reference = copy.deepcopy(models.tsb_model())
    order = build_block_cache(copy.deepcopy(reference), calib).indices.tolist()  # the cache's image order
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(calib, order), batch_size=raw["data"]["batch_size"],
                                         shuffle=True, generator=torch.Generator())
    train_block(reference, loader, block_params=list(get_tsb(reference).parameters()), epochs=2,
                lr=models.cfg.block.lr, seed=5, progress=False)
    w_cached, w_ref = get_tsb(twin).conv.weight, get_tsb(reference).conv.weight
    assert w_cached.abs().sum() > 0
    assert torch.allclose(w_cached, w_ref, atol=1e-5)


def test_block_batch_size_sets_the_calibration_batches_and_needs_a_calibration_set(tmp_path, monkeypatch) -> None:
    """block.batch_size: the cached calibration set trains in batches of that size (more optimizer steps per
    epoch); None keeps data.batch_size; without a calibration set it is refused before anything is built."""
    import tsb_aihw.pipeline.trained as trained

    with pytest.raises(ConfigError, match="block.batch_size = 8 sets the batches of the calibration set"):
        study_config_from_dict(tiny_study(block={"batch_size": 8}))
    steps = []
    real = trained.train_block

    def counting(model, loader, **kw):
        steps.append(len(list(loader)))
        return real(model, loader, **kw)

    monkeypatch.setattr(trained, "train_block", counting)
    for batch in (None, 8):
        raw = tiny_study(block={"epochs": 1, "calibration_images": 48, "batch_size": batch})
        models = StudyContext(study_config_from_dict(raw), tmp_path / str(batch), progress=False).models
        models.blocks.fit_block(copy.deepcopy(models.tsb_model()), seed=5, loader_keys=("t",))
    assert steps == [-(-48 // tiny_study()["data"]["batch_size"]), 6]
    assert models.blocks.block_value("batch_size") == 8


def test_calibration_images_beyond_the_split_fail_before_training(tmp_path) -> None:
    raw = tiny_study(block={"epochs": 1, "calibration_images": 10**6})
    with pytest.raises(ConfigError, match="calibration_images"):
        run_study(study_config_from_dict(raw), tmp_path / "s", progress=False)
    assert not (tmp_path / "s" / "checkpoints").exists() or not any((tmp_path / "s" / "checkpoints").iterdir())


def test_calibration_images_refuse_an_augmenting_block_recipe() -> None:
    raw = tiny_study(block={"calibration_images": 64, "recipe": {"augment": "crop_flip"}})
    with pytest.raises(ConfigError, match="calibration_images"):
        study_config_from_dict(raw).validate()


def test_at_sigmas_gives_one_study_per_sigma_each_trained_at_it() -> None:
    from tsb_aihw.pipeline.config import at_sigmas
    from tsb_aihw.pipeline.studies import study_folders

    base = study_config_from_dict(tiny_study(preset_overrides={"noise.sigma": 0.1, "noise.weight_bits": 8}))
    configs = at_sigmas(base, [0.1, 0.25])
    assert [c.preset_overrides for c in configs] == [{"noise.sigma": 0.1, "noise.weight_bits": 8},
                                                     {"noise.sigma": 0.25, "noise.weight_bits": 8}]
    assert configs[0].to_dict() == base.to_dict() and base.preset_overrides["noise.sigma"] == 0.1
    assert len(set(study_folders(configs))) == 2  # each sigma its own study folder, trained on its own
    with pytest.raises(ConfigError, match="distinct"):
        at_sigmas(base, [0.2, 0.2])
    with pytest.raises(ConfigError, match="which preset 'pcm'"):
        at_sigmas(study_config_from_dict(tiny_study(preset="pcm")), [0.2])
