"""to_analog with real device presets: per-layer verify, the shared tile, grouped convs, weight reports."""
from __future__ import annotations

import copy
import logging

import pytest
import torch
import torchvision
from aihwkit.nn.modules.container import AnalogWrapper
from torch import nn

from tsb_aihw.analog import read_back, tile_grid, to_analog, weight_report
from tsb_aihw.analog.tiles import tile_verify_mask
from tsb_aihw.devices import load_preset, tile_programming_stats
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model, insert_tsb


pytestmark = pytest.mark.usefixtures("fast_cpu")  # no autograd, one torch thread (conftest.py)


def _tsb_vgg(width=0.125, k=8, seed=0):
    torch.manual_seed(seed)
    model = insert_tsb(get_model("vgg8", width=width).eval(), k=k)
    with torch.no_grad():
        model.tsb.conv.weight.normal_(0, 0.1)  # a "trained" block, so its noise shows in the outputs
    return model


def _layer_mask(layer) -> torch.Tensor:
    """The verify mask of an analog layer, stitched back from its tiles ([out, in] tile layout)."""
    full = torch.zeros(layer.out_features, layer.in_features, dtype=torch.bool)
    for piece in tile_grid(layer):
        full[piece.rows, piece.cols] = tile_verify_mask(piece.tile)
    return full


@pytest.fixture(scope="module")
def nvcim():
    return load_preset("nvcim-gaussian")


def test_result_is_an_aihwkit_model_that_programs_and_drifts(nvcim):
    model = _tsb_vgg()
    analog = to_analog(model, nvcim)
    assert isinstance(analog, AnalogWrapper) and not analog.training
    analog.program_analog_weights()
    analog.drift_analog_weights(3600.0)
    out = analog(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert not hasattr(model, "tsb_verified_weights")  # the digital model is untouched (deep copy)


def test_one_tile_serves_every_site_with_the_same_programmed_weights(nvcim):
    torch.manual_seed(1)
    model = _tsb_vgg()
    analog = to_analog(model, nvcim)
    analog.program_analog_weights()
    tsb_tiles = [n for n, _ in analog.named_analog_tiles() if n.startswith("tsb")]
    assert len(tsb_tiles) == 1
    seen = []
    for site in analog.tsb_sites.values():
        site.register_forward_hook(lambda m, i, o: seen.append((i[0].clone(), o.clone())))  # ReLU is in place
    conv_calls = []
    analog.tsb.conv.register_forward_hook(lambda m, i, o: conv_calls.append(1))
    with torch.no_grad():
        analog(torch.randn(2, 3, 32, 32))
    assert len(seen) == len(conv_calls) == len(analog.tsb_sites) == 6
    w = read_back(analog, t=None)["tsb.conv"]  # the block as programmed, read once
    assert not torch.equal(w, model.tsb.conv.weight)  # programming noise is there (verified: small)
    reference = copy.deepcopy(model.tsb)
    with torch.no_grad():
        reference.conv.weight.copy_(w)
        for x, y in seen:  # every site computes with that one programmed kernel
            torch.testing.assert_close(y, reference(x), rtol=1e-4, atol=1e-4)


def test_verify_tsb_puts_exactly_the_block_in_verified_cells(nvcim):
    analog = to_analog(_tsb_vgg(), nvcim)
    analog.program_analog_weights()
    for name, layer in analog.named_analog_layers():
        mask = _layer_mask(layer)
        assert bool(mask.all()) if name == "tsb.conv" else not bool(mask.any()), name
        for tile in layer.analog_tiles():
            stats = tile_programming_stats(tile)
            assert stats["verified_cells"] == int(tile_verify_mask(tile).sum())
            # physically: verified cells are within the verify tolerance of their target (5% of max|W|),
            # one-shot cells (sd 0.27 max|W|) mostly are not
            err = (tile.tile.get_weights() - tile.reference_combined_weights).abs()
            if name == "tsb.conv":
                assert stats["failed_cells"] == 0 and err.max() <= 0.05 + 1e-6
            else:
                assert (err > 0.05).float().mean() > 0.6
    report = weight_report(analog)
    assert report.verified_weights == 64 and report.source == "tiles"


@pytest.mark.parametrize("mode", ["none", "all"])
def test_verify_none_and_all(nvcim, mode):
    analog = to_analog(_tsb_vgg(), nvcim, verify=mode)
    for name, layer in analog.named_analog_layers():
        mask = _layer_mask(layer)
        assert bool(mask.all()) == bool(mask.any()) == (mode == "all"), name
    report = weight_report(analog)
    expected = report.backbone_weights + 64 if mode == "all" else 0
    assert report.verified_weights == expected
    assert report.verified_fraction == pytest.approx(expected / report.backbone_weights)


def test_verify_masks_split_over_tile_arrays():
    # small tiles force arrays: conv6 of width 0.125 is [64, 576] -> 2 x 4 tiles of <=288 x <=16
    # (ideal: nvcim-gaussian refuses tiling, its noise scale is the whole layer's max|W|)
    preset = load_preset("ideal", mapping__max_input_size=300, mapping__max_output_size=16)
    model = _tsb_vgg()
    gen = torch.Generator().manual_seed(3)
    masks = {name: torch.rand(model.get_submodule(name).weight.shape, generator=gen) < 0.3
             for name in ("conv6", "fc1", "conv1")}
    analog = to_analog(model, preset, verify=masks)
    layers = dict(analog.named_analog_layers())
    assert len(tile_grid(layers["conv6"])) == 8
    analog.program_analog_weights()
    for name, layer in layers.items():
        expected = masks[name].reshape(layer.out_features, -1) if name in masks else torch.zeros(
            layer.out_features, layer.in_features, dtype=torch.bool)
        assert torch.equal(_layer_mask(layer), expected), name
        for piece in tile_grid(layer):
            stats = tile_programming_stats(piece.tile)
            assert stats["verified_cells"] == int(expected[piece.rows, piece.cols].sum())
    assert weight_report(analog).verified_weights == sum(int(m.sum()) for m in masks.values())


def test_conv_mask_follows_aihwkit_unfold_order():
    """Mask [out, in, kh, kw] -> tile [out, in*kh*kw]: check against the weights AIHWKit put on the tile."""
    preset = load_preset("ideal")
    model = _tsb_vgg()
    w = model.conv2.weight
    mask = w > w.flatten().kthvalue(w.numel() // 2).values  # the larger half of the weights
    analog = to_analog(model, preset, verify={"conv2": mask})
    layer = dict(analog.named_analog_layers())["conv2"]
    tile_w, _ = layer.get_weights()  # [out, in*kh*kw] as held on the tile
    assert torch.equal(_layer_mask(layer), tile_w > w.flatten().kthvalue(w.numel() // 2).values)


@pytest.mark.parametrize("verify, match", [
    ({"conv9": torch.ones(1, dtype=torch.bool)}, "no conv/linear layer of that name"),
    ({"conv1": torch.ones(3, 3, dtype=torch.bool)}, "weight shape"),
    ({"conv1": torch.ones(8, 3, 3, 3)}, "bool tensor"),
    ("some", "verify='some' is unknown"),
])
def test_bad_verify_arguments(nvcim, verify, match):
    with pytest.raises(ConfigError, match=match):
        to_analog(_tsb_vgg(), nvcim, verify=verify)


def test_verify_tsb_without_a_block_is_an_error(nvcim):
    with pytest.raises(ConfigError, match="insert_tsb"):
        to_analog(get_model("lenet3", width=0.5), nvcim)
    with pytest.raises(ConfigError, match="rpu_config"):
        to_analog(_tsb_vgg(), object())


def test_grouped_convs_stay_digital_and_are_reported(nvcim, caplog):
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, num_classes=10, width_mult=0.25).eval()
    insert_tsb(model, input_shape=(3, 32, 32))
    grouped = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(grouped) == 17
    with caplog.at_level(logging.WARNING, logger="tsb_aihw.analog.convert"):
        analog = to_analog(model, nvcim)
    assert [d["name"] for d in analog.tsb_digital_layers] == grouped
    assert all("groups=" in d["reason"] for d in analog.tsb_digital_layers)
    assert "17 layer(s) stay digital" in caplog.text and grouped[0] in caplog.text
    modules = dict(analog.named_modules())
    assert all(type(modules[n]) is nn.Conv2d for n in grouped)
    report = weight_report(analog)
    rows = {r.name: r for r in report.rows}
    assert not any(rows[n].analog for n in grouped) and rows["tsb.conv"].analog
    assert report.verified_weights == 64 and report.analog_weights < report.backbone_weights + 64
    analog.program_analog_weights()
    assert analog(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_digital_model_reports_and_fractions_under_budget():
    for name, k in (("vgg8", 64), ("resnet18", 64), ("lenet3", 16)):
        report = weight_report(insert_tsb(get_model(name)))
        assert report.tsb_weights == report.verified_weights == k * k
        assert report.verified_fraction < 0.004
    lenet = weight_report(insert_tsb(get_model("lenet3")))
    assert lenet.verified_fraction == pytest.approx(256 / 68_000)  # 0.376%
    d = lenet.to_dict()
    assert d["verified_fraction"] == lenet.verified_fraction and len(d["rows"]) == 4
    text = lenet.format()
    assert "tsb.conv" in text and "0.3765%" in text
    assert weight_report(insert_tsb(get_model("lenet3")), verify="none").verified_weights == 0


def test_digital_report_flags_grouped_convs():
    model = torchvision.models.mobilenet_v2(weights=None, width_mult=0.25)
    report = weight_report(model, verify="none")
    assert sum(not r.analog for r in report.rows) == 17 and len(report.notes) == 17
