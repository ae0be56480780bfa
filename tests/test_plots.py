"""Figures: every plot writes a PNG and a PDF atomically and draws what it is given."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tsb_aihw import plots


def _band(n: int, lo: float = 0.8) -> dict[str, list[float]]:
    mean = list(np.linspace(lo, lo + 0.1, n))
    return {"mean": mean, "ci_low": [m - 0.02 for m in mean], "ci_high": [m + 0.02 for m in mean]}


def _check(files: list[Path], tmp_path: Path) -> None:
    assert [f.suffix for f in files] == [".png", ".pdf"]
    assert all(f.stat().st_size > 1000 for f in files)
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[1].read_bytes()[:4] == b"%PDF"
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]  # no half-written leftovers


def test_accuracy_vs_time_with_events(tmp_path: Path):
    series = {"TSB": {"times": [0, 1, 3600, 86400, 3.15e7], **_band(5)}}
    _check(plots.plot_accuracy_vs_time(series, tmp_path / "a" / "time", reference=0.95,
                                       events={"refresh 1d": 86400}), tmp_path)


def test_accuracy_vs_verified_fraction_and_parameter(tmp_path: Path):
    curves = {"magnitude": {"fraction": [0, 0.001, 0.01, 1.0], **_band(4, 0.6)}}
    points = {"TSB": {"fraction": 0.0037, "mean": 0.8, "ci_low": 0.78, "ci_high": 0.82}}
    _check(plots.plot_accuracy_vs_verified_fraction(curves, points, tmp_path / "frac"), tmp_path)
    series = {"(b)": {"x": [0.05, 0.1, 0.2, 0.4], **_band(4)}}
    _check(plots.plot_accuracy_vs_parameter(series, tmp_path / "sigma", xlabel="sigma"), tmp_path)


def test_weight_error_histograms_from_arrays(tmp_path: Path):
    rng = np.random.default_rng(0)
    panels = {"after programming": {"backbone": rng.normal(0, 0.03, 5000), "TSB": rng.normal(0, 0.004, 64)},
              "after 1 y": {"backbone": rng.normal(0, 0.05, 5000), "TSB": rng.normal(0, 0.04, 64)}}
    _check(plots.plot_weight_error_histograms(panels, tmp_path / "hist", logy=True), tmp_path)
    _check(plots.plot_weight_error_histograms(panels, tmp_path / "hist_lin", logy=False, xlim=5.0), tmp_path)
    with pytest.raises(ValueError, match="no errors"):
        plots.plot_weight_error_histograms({"empty": {}}, tmp_path / "none")


def test_weight_error_histograms_from_an_analog_chip(tmp_path: Path, fast_cpu):
    import torch

    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.weight_errors import weight_errors
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model, get_tsb, insert_tsb
    from helpers import program_chip

    torch.manual_seed(0)
    m = insert_tsb(get_model("lenet3", num_classes=10, in_channels=1, input_size=28)).eval()
    torch.nn.init.normal_(get_tsb(m).conv.weight, std=0.1)
    a = to_analog(m, load_preset("pcm"), verify="tsb").eval()
    program_chip(a, 0)
    panels = {"t = 0": weight_errors(a, 0.0), "1 d": weight_errors(a, 86400.0, seed=0)}
    _check(plots.plot_weight_error_histograms(panels, tmp_path / "chip", split="group+verified"), tmp_path)


def test_preset_label_names_the_overrides():
    """Two noise levels of one preset must not carry the same plot title."""
    assert plots.preset_label("nvcim-gaussian", {"noise.sigma": 0.2}) == "nvcim-gaussian (noise.sigma=0.2)"
    assert plots.preset_label("pcm", {"periphery.adc_bits": 6, "noise.drift": True}) == \
        "pcm (noise.drift=True, periphery.adc_bits=6)"
    assert plots.preset_label("pcm", None) == plots.preset_label("pcm", {}) == "pcm"


@pytest.mark.parametrize("xs, slanted", [([2500, 3750, 4000, 5000], True), ([1, 2, 3], False)])
def test_swept_ticks_slant_only_when_labels_would_overprint(xs, slanted):
    fig, ax = plots.plt.subplots(figsize=(3.5, 3))
    ax.plot(xs, xs)
    plots._swept_ticks(ax, xs, logx=False)
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"{x:g}" for x in xs]
    assert (ax.get_xticklabels()[0].get_rotation() != 0) is slanted
    plots.plt.close(fig)
