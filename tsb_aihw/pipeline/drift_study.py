"""Drift study of one trained model on several device presets: accuracy vs time over N chips, one call.

``run_drift_study`` converts the same digital model once per preset (``to_analog(model, preset, verify)``),
runs :func:`tsb_aihw.evaluation.evaluate_drift` with a per-preset chip checkpoint (so an interrupted study
resumes from its finished chips), and writes one ``drift.json`` (config, seed, provenance, per-chip accuracies
and mean/std/95% CI per preset and time), ``drift_summary.csv`` and an accuracy-vs-time plot (PNG + PDF).

It is what ``tsb-aihw drift`` runs; a model without a checkpoint is first trained with noise injection
(:func:`prepare_model`), and that digital checkpoint is kept in the output directory for re-runs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.evaluation.times import format_time, parse_times
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, ensure_writable_dir
from tsb_aihw.utils.seeding import derive_seed, seed_everything

DEFAULT_DRIFT_TIMES = ("0s", "1s", "1h", "1d", "1mo", "1y")


@dataclass
class DriftStudyConfig:
    """What ``tsb-aihw drift`` needs; recorded verbatim in ``drift.json``."""

    model: str = "lenet3"
    width: float = 1.0
    dataset: str = "mnist5k"
    presets: list[str] = field(default_factory=lambda: ["pcm"])
    times: list[float | str] = field(default_factory=lambda: list(DEFAULT_DRIFT_TIMES))
    chips: int = 20
    seed: int = 0
    verify: str = "none"  # none | all | tsb (tsb only makes sense for a model holding a trained block)
    checkpoint: str | None = None  # digital state dict of the registry model; None: train one
    train_epochs: int = 10  # noise-injection epochs when no checkpoint is given
    train_noise_std: float | None = None  # None: the first preset's training_noise_std
    eval_limit: int | None = None  # first N test images (None = the whole test split)
    batch_size: int = 500
    device: str = "cpu"

    def validate(self) -> "DriftStudyConfig":
        if not self.presets:
            raise ConfigError("no device presets given; pass e.g. --preset pcm --preset rram")
        if not isinstance(self.chips, int) or isinstance(self.chips, bool) or self.chips < 2:
            raise ConfigError(f"chips must be an integer >= 2 (mean ± std over chips needs two), got {self.chips!r}")
        if self.verify not in ("none", "all", "tsb"):
            raise ConfigError(f"verify must be 'none', 'all' or 'tsb', got {self.verify!r}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ConfigError(f"eval_limit must be a positive number of images or None, got {self.eval_limit!r}")
        if self.checkpoint is None and self.train_epochs < 1:
            raise ConfigError("no --checkpoint given and train_epochs < 1: give a checkpoint or train >= 1 epoch")
        if not parse_times(self.times):
            raise ConfigError("no drift times given; pass e.g. --times 0,1s,1h,1d,1mo,1y")
        return self


def load_model_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a digital state dict (plain, or ``{"state_dict": ...}`` as saved here) with a clear error."""
    from tsb_aihw.models.pretrained import load_state_checked, read_state_dict

    blob = read_state_dict(path)  # ConfigError (one line) if missing, damaged or not a torch file
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path} holds no state dict; save one with torch.save(model.state_dict(), path)")
    load_state_checked(model, state, str(path), fix="check --model, --width and the dataset")
    return model.eval()


def prepare_model(cfg: DriftStudyConfig, out: Path, progress: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The digital model: loaded from ``cfg.checkpoint``, or trained with noise injection (kept in ``out``)."""
    from tsb_aihw.data import get_dataset, make_loader
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model
    from tsb_aihw.models.pretrained import load_state_checked
    from tsb_aihw.pipeline.study import Checkpoints
    from tsb_aihw.training import train_noise_injection

    info = get_dataset(cfg.dataset, "test", seed=cfg.seed).info
    # the initial weights come from torch's global generator, which torch seeds randomly in every new process
    seed_everything(derive_seed(cfg.seed, "drift-study", "init"))
    model = get_model(cfg.model, num_classes=info.num_classes, in_channels=info.in_channels, width=cfg.width,
                      input_size=info.image_size[0])
    if cfg.checkpoint is not None:
        return load_model_checkpoint(model, cfg.checkpoint), {"source": str(cfg.checkpoint)}
    noise = cfg.train_noise_std
    if noise is None:
        noise = load_preset(cfg.presets[0]).training_noise_std
    key = {"model": cfg.model, "width": cfg.width, "dataset": cfg.dataset, "epochs": cfg.train_epochs,
           "noise_std": noise, "seed": cfg.seed}
    ckpt = Checkpoints(out, folder="")  # OUT/model.pt, kept for re-runs with the same training key
    hit = ckpt.load("model", key)
    if hit is not None:
        state, meta = hit
        load_state_checked(model, state, str(ckpt.path("model")))
        return model.eval(), {**meta, "reused": True}
    seed = derive_seed(cfg.seed, "drift-study", "train")
    train = make_loader(get_dataset(cfg.dataset, "train", seed=cfg.seed), 128, shuffle=True, seed=seed)
    val = make_loader(get_dataset(cfg.dataset, "val", seed=cfg.seed), 500)
    res = train_noise_injection(model, train, val, noise_std=noise, epochs=cfg.train_epochs, device=cfg.device,
                                seed=seed, progress=progress)
    meta = {"source": "trained", **key, "train_time_s": res.wall_time_s, "best_val_acc": res.best_val_acc}
    ckpt.save("model", key, model.state_dict(), meta)
    return model.eval(), meta


def _series(result: Any) -> dict[str, list[float]]:
    """Plot series of one Monte-Carlo result (None CI for n = 1 drawn as the mean)."""
    sums = [s.to_dict() for s in result.summaries]
    return {"times": list(result.times), "mean": [s["mean"] for s in sums],
            "ci_low": [s["ci95_low"] if s["ci95_low"] is not None else s["mean"] for s in sums],
            "ci_high": [s["ci95_high"] if s["ci95_high"] is not None else s["mean"] for s in sums]}


def run_drift_study(model: nn.Module, test_data: Any, presets: Sequence[str], times: Sequence[float | str],
                    chips: int, seed: int, out: str | Path, *, verify: str = "none", device: str = "cpu",
                    config: dict[str, Any] | None = None, model_source: dict[str, Any] | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Accuracy vs drift time of ``model`` on each preset over ``chips`` chips; writes and returns ``drift.json``.

    Every preset uses the same chip seeds (``seed``), so presets differ only by their device physics. A re-run
    with the same arguments resumes from ``<out>/<preset>/chips.ckpt.json``.
    """
    from tsb_aihw.evaluation import evaluate_accuracy, evaluate_drift
    from tsb_aihw.evaluation.drift import as_loader
    from tsb_aihw.plots import plot_accuracy_vs_time
    from tsb_aihw.utils.provenance import provenance

    out_dir = ensure_writable_dir(out)
    seconds = parse_times(times)
    loader = as_loader(test_data)
    reference = evaluate_accuracy(model.eval(), loader, device=device)
    entries: dict[str, Any] = {}
    for name in presets:
        sub = ensure_writable_dir(out_dir / Path(str(name)).stem)
        res = evaluate_drift(model, loader, name, seconds, chips=chips, seed=seed, verify=verify, device=device,
                             checkpoint_path=sub / "chips.ckpt.json", progress=progress)
        res.save(sub)
        entries[str(name)] = {**res.to_dict(), "series": _series(res)}
    labels = [format_time(t) for t in seconds]
    rows = [{"preset": p, "time_s": t, "time_label": lab, **{k: v for k, v in s.items()}}
            for p, e in entries.items() for t, lab, s in zip(seconds, labels, e["summary"].values())]
    plots = plot_accuracy_vs_time({p: e["series"] for p, e in entries.items()}, out_dir / "accuracy_vs_time",
                                  reference=reference,
                                  title=f"{chips} chips per preset, verify={verify}")
    result = {"config": config or {}, "seed": seed, "chips": chips, "times": seconds, "time_labels": labels,
              "verify": verify, "reference_accuracy": reference,
              "reference_definition": "digital test accuracy of the same model (no device effects)",
              "presets": {p: {k: v for k, v in e.items() if k != "series"} for p, e in entries.items()},
              "plots": [p.name for p in plots], "model_source": model_source or {}, "provenance": provenance()}
    atomic_write_csv(out_dir / "drift_summary.csv", rows)
    atomic_write_json(out_dir / "drift.json", result)
    return result


def drift_study_from_config(cfg: DriftStudyConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """``tsb-aihw drift``: prepare (load or train) the model, load the test split, run the study."""
    from tsb_aihw.data import get_dataset

    cfg.validate()
    out_dir = ensure_writable_dir(out)
    model, meta = prepare_model(cfg, out_dir, progress=progress)
    test = get_dataset(cfg.dataset, "test", seed=cfg.seed)
    if cfg.eval_limit is not None and cfg.eval_limit < len(test):
        test = torch.utils.data.Subset(test, range(cfg.eval_limit))
    from torch.utils.data import DataLoader

    loader = DataLoader(test, batch_size=cfg.batch_size, shuffle=False)
    result = run_drift_study(model, loader, cfg.presets, cfg.times, cfg.chips, cfg.seed, out_dir,
                             verify=cfg.verify, device=cfg.device, config=asdict(cfg), model_source=meta,
                             progress=progress)
    return result


def format_drift_table(result: dict[str, Any]) -> str:
    """Mean ± std (95% CI) per preset and time, as a plain-text table for the terminal."""
    labels = result["time_labels"]
    head = f"{'preset':<16}" + "".join(f"{lab:>22}" for lab in labels)
    lines = [f"digital reference accuracy: {100 * result['reference_accuracy']:.2f}%", head]
    for name, e in result["presets"].items():
        cells = []
        for lab in labels:
            s = e["summary"][lab]
            std = s["std"] if s["std"] is not None else math.nan
            cells.append(f"{100 * s['mean']:6.2f} ± {100 * std:5.2f}%")
        lines.append(f"{name:<16}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)
