"""Sweeps: accuracy vs verified-weight fraction, vs a device parameter (sigma, ADC/DAC bits, any preset key)
and vs time for several presets, with every (axis value, method, chip) cell saved as it completes.

A sweep is a base :class:`~tsb_aihw.pipeline.config.StudyConfig` (the YAML of ``tsb-aihw run --config``),
one axis (a kind and its values) and the methods to deploy at every axis value. Backbones and fixed blocks are
trained ONCE, on the base config's preset, and the same digital models are deployed at every axis value: a
sweep isolates what the axis changes on the chip, not a retrained model (``sweep.json`` records this under
``training_note``). Chip ``i`` is seeded from ``(seed, chip i, layer, tile)`` whatever the axis value, method
or executor, so points share chips and results do not depend on where a cell ran.

Usage::

    from tsb_aihw.pipeline.config import load_study_config
    from tsb_aihw.sweeps import run_sweep

    cfg = load_study_config("configs/sweeps/mnist5k-lenet3.yaml")
    res = run_sweep(cfg, "verified_fraction", [0, 0.001, 0.01, 0.1, 1.0], "runs/fraction")  # serial
    res = run_sweep(cfg, "sigma", [0.1, 0.2, 0.35], "runs/sigma", workers=2)                # process pool
    res = run_sweep(cfg, "presets", ["pcm", "rram"], "runs/drift", times=["1s", "1d", "1y"],
                    scheduler="tcp://10.0.0.5:8786")                                         # Dask cluster
    res.to_dict()   # what sweep.json holds: config, seed, provenance, points with per-chip accuracies
    res.save()      # sweep.json + sweep.csv (run_sweep already saved them)
    res.plot()      # PNG + PDF via tsb_aihw.plots; returns the paths
    res.points[0]   # {"axis_value", "method", "label", "accuracy": {time: summary}, "per_chip": ..., ...}

Kinds (``SweepAxis.kind``): ``verified_fraction`` (selective write-verify curves random / magnitude /
second_derivative from 0 to 1, plus TSB and other fixed points at their own verified fraction),
``sigma`` (preset key ``noise.sigma``), ``adc_bits`` (``periphery.adc_bits`` and ``periphery.dac_bits``),
``param`` (any preset key, e.g. ``SweepAxis("param", [0.5, 1, 2], key="noise.prog_noise_scale")``) and
``presets`` (one deployment per preset; accuracy vs time). CLI: ``tsb-aihw sweep --help``; docs: docs/sweeps.md.
"""
from tsb_aihw.sweeps.axes import KINDS, SweepAxis
from tsb_aihw.sweeps.result import SweepResult, load_sweep
from tsb_aihw.sweeps.runner import run_sweep

__all__ = ["KINDS", "SweepAxis", "SweepResult", "load_sweep", "run_sweep"]
