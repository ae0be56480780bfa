"""The block's design space within the verified budget (issue 31 item 1): k and sites from a budget, a site on
the classifier's input, a verified bias column, and block training at the write-verify residual.

Every option is opt-in: the defaults must leave the model, the keys and the committed results as they were."""
from __future__ import annotations

import copy
import math
import types
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model, get_tsb, insert_tsb
from tsb_aihw.models.tsb import TinySharedBlock, block_weight_count
from tsb_aihw.pipeline.config import BlockConfig, StudyConfig, keyed_tree, study_config_from_dict

from helpers import tiny_study

ROOT = Path(__file__).resolve().parents[1]


def _widths(model: torch.nn.Module) -> list[int]:
    return [s.width for s in model.tsb_sites.values()]


# -- k and sites from a budget ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,width,budget,bias", [
    ("vgg8", 1.0, 0.004, False), ("vgg8", 1.0, 0.001, True), ("vgg8", 0.25, 0.004, True),
    ("vgg8", 0.25, 0.0005, False), ("resnet18", 0.25, 0.004, False), ("resnet18", 0.25, 0.001, True),
    ("lenet3", 1.0, 0.004, True), ("lenet3", 1.0, 0.0005, False)])
def test_budget_k_spends_at_most_the_budget_and_is_the_largest_valid_k(name, width, budget, bias):
    kw = {"in_channels": 1} if name == "lenet3" else {}
    model = insert_tsb(get_model(name, width=width, **kw), k="budget", where="conv+classifier", budget=budget,
                       bias=bias)
    cfg = model.tsb_config
    k, limit = cfg["k"], budget * cfg["backbone_weights"]
    assert cfg["tsb_weights"] == block_weight_count(k, bias) == get_tsb(model).conv.weight.numel() <= limit
    every = [s["width"] for s in model.tsb_skipped_sites] + _widths(model)
    assert all(w % k == 0 for w in _widths(model)) and all(w % k for w in every if w not in _widths(model))
    bigger = 2 * k  # the next power of two: over the budget, or dividing no site width
    assert block_weight_count(bigger, bias) > limit or not any(w % bigger == 0 for w in every)
    auto = insert_tsb(get_model(name, width=width, **kw), k="auto", where="conv+classifier", budget=budget,
                      bias=bias)
    assert k >= auto.tsb_config["k"]  # "budget" never picks a smaller block than "auto"


def test_budget_k_on_the_cifar_backbones():
    """The paper's 0.4%: VGG-8 and ResNet-18 at width 1 get k = 128 (0.128% / 0.148%; k = 256 would be 0.51%),
    skipping their 64-wide sites; the classifier-input site is kept."""
    for name, skipped in (("vgg8", 1), ("resnet18", 5)):
        model = insert_tsb(get_model(name), k="budget", where="conv+classifier")
        assert model.tsb_config["k"] == 128 and len(model.tsb_skipped_sites) == skipped
        assert list(model.tsb_sites.values())[-1].target == "flatten"
        assert 256 * 256 > 0.004 * model.tsb_config["backbone_weights"]


def test_budget_k_skips_without_warning_but_explicit_k_still_warns(recwarn):
    insert_tsb(get_model("vgg8", width=0.25), k="budget")
    assert not [w for w in recwarn if "skipped" in str(w.message)]
    with pytest.warns(UserWarning, match="skipped"):
        insert_tsb(get_model("vgg8", width=0.25), k=32)


# -- the classifier-input site -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name,target,width", [("vgg8", "flatten", 2048), ("resnet18", "flatten", 128),
                                               ("lenet3", "flatten", 1600)])
def test_classifier_site_is_the_input_of_the_first_linear(name, target, width):
    kw = {"in_channels": 1} if name == "lenet3" else {"width": 0.25}
    model = insert_tsb(get_model(name, **kw), k=16, where="classifier")
    (site,) = model.tsb_sites.values()
    assert (site.target, site.width, site.kind) == (target, width, "classifier")
    conv = insert_tsb(get_model(name, **kw), k=16, where="conv")
    both = insert_tsb(get_model(name, **kw), k=16, where="conv+classifier")
    assert [s.target for s in both.tsb_sites.values()] == [s.target for s in conv.tsb_sites.values()] + [target]


def test_classifier_site_through_a_functional_flatten():
    """torchvision's ResNet flattens with torch.flatten: the site is the pool whose output the head reads."""
    import torchvision

    model = insert_tsb(torchvision.models.resnet18(weights=None, num_classes=10), k=64, where="classifier",
                       input_shape=(3, 32, 32))
    (site,) = model.tsb_sites.values()
    assert (site.target, site.width) == ("avgpool", 512)


@pytest.mark.parametrize("bias", [False, True])
def test_classifier_site_is_identity_at_init_and_changes_the_classifier_input(bias):
    torch.manual_seed(0)
    base = get_model("vgg8", width=0.25).eval()
    model = insert_tsb(copy.deepcopy(base), k=16, where="conv+classifier", bias=bias).eval()
    x = torch.randn(4, 3, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    model.fc1.register_forward_pre_hook(lambda m, a: seen.__setitem__("fc1", a[0].detach().clone()))
    assert torch.equal(model(x), base(x))  # residual, zero init: bit-identical
    before = seen["fc1"]
    with torch.no_grad():
        get_tsb(model).conv.weight.normal_(0, 0.1)
    model(x)
    block = get_tsb(model)
    expected = block(before)  # the classifier site applies the same block to fc1's input
    after = seen["fc1"]
    assert not torch.allclose(after, before)
    # fc1's input is the block applied to what the earlier (now also active) sites produce: check the rule on a
    # model whose only site is the classifier's input
    only = insert_tsb(copy.deepcopy(base), k=16, where="classifier", bias=bias).eval()
    only.tsb.load_state_dict(block.state_dict())
    only.fc1.register_forward_pre_hook(lambda m, a: seen.__setitem__("only", a[0].detach().clone()))
    only(x)
    assert torch.allclose(seen["only"], expected, atol=1e-6)


# -- the bias column ---------------------------------------------------------------------------------------------


def test_bias_is_one_more_column_of_the_kernel_and_trains():
    block = TinySharedBlock(4, bias=True)
    assert tuple(block.conv.weight.shape) == (4, 5, 1, 1) and block.weight_count == 20
    x = torch.randn(3, 8, 2, 2)
    assert torch.equal(block(x), x)
    with torch.no_grad():
        block.conv.weight[:, 4] = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1)
    shift = torch.tensor([1.0, 2.0, 3.0, 4.0] * 2).view(1, 8, 1, 1)  # tied across the two 4-channel groups
    assert torch.allclose(block(x), x + shift)
    assert torch.equal(block.bias_weights, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    plain = TinySharedBlock(4, residual=False, bias=True)
    assert torch.equal(plain(x), x)  # identity kernel, zero bias
    assert TinySharedBlock(4).bias_weights is None and TinySharedBlock(4).weight_count == 16

    # a constant shift only the bias can undo: training moves the bias column
    from tsb_aihw.training import train_block

    torch.manual_seed(0)
    model = insert_tsb(get_model("lenet3", in_channels=1, input_size=8, width=0.5), k=8, bias=True,
                       budget=1.0)
    data = TensorDataset(torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,)))
    train_block(model, DataLoader(data, batch_size=16), epochs=1, lr=0.01, progress=False)
    assert get_tsb(model).bias_weights.abs().sum() > 0


def test_bias_is_programmed_verified_and_counted():
    from tsb_aihw.analog import read_back, to_analog, weight_report
    from tsb_aihw.devices import load_preset, tile_programming_stats
    from tsb_aihw.devices.programming import iter_inference_tiles

    torch.manual_seed(0)
    preset = load_preset("nvcim-gaussian")
    model = insert_tsb(get_model("lenet3", in_channels=1, input_size=8, width=0.5), k=8, bias=True,
                       budget=1.0)
    with torch.no_grad():
        get_tsb(model).conv.weight.normal_(0, 0.2)
    target = get_tsb(model).conv.weight.detach().clone()
    analog = to_analog(model, preset)
    assert analog.tsb_verified_weights["tsb.conv"] == 8 * 9
    report = weight_report(analog)
    assert report.tsb_weights == 8 * 9
    assert report.verified_fraction == pytest.approx(8 * 9 / report.backbone_weights)
    analog.program_analog_weights()
    (tile,) = list(iter_inference_tiles(analog.tsb.conv))
    stats = tile_programming_stats(tile)
    assert stats["cells"] == stats["verified_cells"] == 8 * 9
    got = read_back(analog, t=None)["tsb.conv"]
    err = (got - target).abs() / target.abs().max()
    assert float(err[:, 8].max()) <= preset.write_verify.tolerance + 1e-6  # the bias column: within tolerance


# -- training at the write-verify residual -------------------------------------------------------------------------


def test_verified_residual_std_of_the_gaussian_preset():
    """nvcim-gaussian accepts errors uniform in +-5% of max|W|: sd 0.05 / sqrt(3) = 0.0289."""
    from tsb_aihw.devices import load_preset
    from tsb_aihw.training.block_training import verified_residual_std

    preset = load_preset("nvcim-gaussian")
    state = torch.random.get_rng_state()
    std = verified_residual_std(preset)
    assert torch.equal(state, torch.random.get_rng_state())  # the measurement leaves the global stream alone
    assert std == pytest.approx(0.05 / math.sqrt(3), rel=0.05)
    assert BlockConfig(train_verify_residual=True).noise_std(preset) == std
    assert BlockConfig().noise_std(preset) == 0.0


def test_residual_noise_perturbs_the_block_at_the_expected_std():
    from tsb_aihw.training import train_block

    torch.manual_seed(0)
    model = insert_tsb(get_model("lenet3", in_channels=1, input_size=8, width=0.5), k=8, bias=True,
                       budget=1.0)
    with torch.no_grad():
        get_tsb(model).conv.weight.normal_(0, 0.1)
    std = 0.0289
    seen: list[torch.Tensor] = []

    def record(module, args):
        if module.training:
            w = module.weight  # the noisy weight this forward uses
            clean = module.parametrizations.weight.original
            seen.append(((w - clean) / clean.abs().max()).detach().flatten())

    conv = get_tsb(model).conv
    data = TensorDataset(torch.rand(400, 1, 8, 8), torch.randint(0, 10, (400,)))
    handle = conv.register_forward_pre_hook(record)
    try:
        train_block(model, DataLoader(data, batch_size=8), epochs=1, lr=1e-4, noise_std=std, progress=False)
    finally:
        handle.remove()
    noise = torch.cat(seen)
    assert len(seen) >= 50 and noise.numel() >= 50 * 72
    assert float(noise.std()) == pytest.approx(std, rel=0.05)
    assert abs(float(noise.mean())) < 0.1 * std


def test_the_pipeline_trains_every_block_at_the_residual(monkeypatch):
    """``BlockFitter.fit_block`` (the one way a study trains a block) passes the block config's noise std."""
    import tsb_aihw.pipeline.trained as trained
    from tsb_aihw.devices import load_preset
    from tsb_aihw.training.block_training import verified_residual_std

    calls: list[dict] = []
    monkeypatch.setattr(trained, "train_block", lambda model, loader, **kw: calls.append(kw) or "done")
    preset = load_preset("nvcim-gaussian")
    fake = types.SimpleNamespace(cfg=StudyConfig(), preset=preset, train_loader=lambda *keys: "loader")
    model = insert_tsb(get_model("lenet3", in_channels=1, input_size=8, width=0.5), k=8, budget=1.0)
    for flag, expected in ((False, 0.0), (True, verified_residual_std(preset))):
        trained.BlockFitter.fit_block(fake, model, 0, ("x",), block=BlockConfig(train_verify_residual=flag))
        assert calls[-1]["noise_std"] == expected


# -- config: defaults keep every key, bad values are one line --------------------------------------------------------


def test_block_config_inserts_what_it_says():
    model = BlockConfig(k="budget", where="conv+classifier", bias=True, budget=0.01).insert(
        get_model("vgg8", width=0.25))
    cfg = model.tsb_config
    assert (cfg["where"], cfg["bias"], cfg["budget"]) == ("conv+classifier", True, 0.01)
    default = BlockConfig().insert(get_model("vgg8", width=0.25))
    reference = insert_tsb(get_model("vgg8", width=0.25))
    assert default.tsb_config == reference.tsb_config
    assert tuple(get_tsb(default).conv.weight.shape) == (16, 16, 1, 1)


def test_defaults_leave_every_key_unchanged():
    explicit = {"k": "auto", "where": "conv", "residual": True, "budget": 0.004, "bias": False,
                "train_verify_residual": False}
    assert keyed_tree(study_config_from_dict(tiny_study(block=explicit))) == \
        keyed_tree(study_config_from_dict(tiny_study(block={})))
    changed = keyed_tree(study_config_from_dict(tiny_study(block={"bias": True, "k": "budget"})))
    assert changed["block"] == {"bias": True, "k": "budget"}
    for path in sorted((ROOT / "configs").glob("**/*.yaml")):  # no config but the measurements' names a new field
        if path.parent.name == "block-design":
            continue
        block = (yaml.safe_load(path.read_text()) or {}).get("block") or {}
        assert not {"budget", "bias", "train_verify_residual"} & set(block), path


@pytest.mark.parametrize("block,match", [
    ({"k": "budgte"}, r"block\.k = 'budgte': must be 'auto', 'budget' or an integer"),
    ({"budget": 0}, r"block\.budget = 0(\.0)? is out of range; allowed: 0 < budget <= 1"),
    ({"budget": 1.5}, r"block\.budget = 1\.5 is out of range"),
    ({"where": "conv+clasifier"}, r"block\.where = 'conv\+clasifier': unknown insertion rule \(did you mean "
                                  r"'conv\+classifier'\?\)"),
    ({"bias": "maybe"}, r"block\.bias"),
    ({"train_verify_residual": 3}, r"block\.train_verify_residual"),
])
def test_bad_values_are_one_line_config_errors(block, match):
    with pytest.raises(ConfigError, match=match) as err:
        study_config_from_dict(tiny_study(block=block))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs,match", [
    ({"k": "most"}, "k must be 'auto', 'budget' or a positive int"),
    ({"where": "conv+conv"}, "where='conv\\+conv' is unknown"),
    ({"where": "head"}, "use one of conv, stage, all, classifier"),
    ({"k": "budget", "budget": 1e-9}, "even k=1 exceeds the verify budget"),
])
def test_insert_rejects_bad_design_values(kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        insert_tsb(get_model("lenet3", in_channels=1), **kwargs)
    assert "\n" not in str(err.value)
