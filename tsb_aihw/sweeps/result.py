"""A finished sweep: per-point summaries over chips, the files it writes and its plots."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from tsb_aihw.evaluation import evaluate_accuracy, summarize
from tsb_aihw.utils.io import atomic_write_csv, atomic_write_json, read_json
from tsb_aihw.utils.provenance import provenance

SCHEMA = "tsb-aihw-sweep/1"


def assemble_sweep(ctx: Any, axis: Any, points: list[Any], cells: Mapping[str, list[Any]],
                   presets: Mapping[str, Any], *, note: str, executor: dict[str, Any], resumed: int) -> "SweepResult":
    """Summaries (mean, std, Student-t 95% CI over chips) of every point at every time.

    ``ctx`` is the sweep's :class:`~tsb_aihw.pipeline.tasks.StudyContext`, ``cells[point id]`` its
    :class:`~tsb_aihw.pipeline.deploy.CellResult` per chip and ``presets[point id]`` the device it ran on."""
    from tsb_aihw.analog import weight_report
    from tsb_aihw.models import get_tsb

    cfg, labels, models = ctx.cfg, ctx.labels, ctx.models
    rows_out = []
    for p in points:
        rows = cells[p.id]
        per_chip = [r.acc for r in rows]
        preset = presets[p.id]
        rows_out.append({
            "id": p.id, "axis_value": p.axis_value, "role": p.role, "method": p.spec.key, "label": p.spec.label,
            "curve": p.spec.curve, "selection": list(p.spec.selection) if p.spec.selection else None,
            "preset": preset.name, "preset_source": p.deploy.preset, "overrides": p.deploy.overrides,
            "preset_identity": preset.identity, "verified_fraction": rows[0].verified_fraction,
            "cost": {k: sum(r.cost[k] for r in rows) / len(rows) for k in rows[0].cost},
            "accuracy": {t: summarize([c[i] for c in per_chip]).to_dict() for i, t in enumerate(labels)},
            "per_chip": per_chip, "chips": [r.chip for r in rows],
        })
        if p.spec.block == "chip":  # wall time: a timing key (tsb_aihw.utils.timing), ignored by comparisons
            rows_out[-1]["block_time_s"] = sum(r.block_time_s for r in rows) / len(rows)
    tsb = models.tsb_model()
    data = {
        "schema": SCHEMA, "kind": axis.kind, "axis": axis.to_dict(), "config": cfg.to_dict(), "seed": cfg.seed,
        "chips": cfg.chips, "provenance": provenance(), "training_note": note,
        "base_preset": ctx.preset.to_dict() | {"name": ctx.preset.name},
        "model": cfg.model.name, "width": cfg.model.width,
        "dataset": {"name": cfg.data.name, "split_note": ctx.data.test_info.split_note,
                    "eval_size": len(ctx.data.test.dataset)},
        "times": ctx.times, "time_labels": labels,
        "reference_accuracy": evaluate_accuracy(models.backbone("full"), ctx.data.test, device=cfg.device),
        "reference_definition": "clean digital test accuracy of the fully trained noise-injection backbone (b)",
        "tsb": {"k": get_tsb(tsb).k, "weights": get_tsb(tsb).conv.weight.numel(),
                "verified_fraction": weight_report(tsb).verified_fraction},
        "points": rows_out,
        "training": {k: {"train_time_s": v.get("train_time_s")} for k, v in models.meta.items()},
    }
    if axis.kind == "block":
        data["block_budget"] = block_budget_summary(axis, models.block_value(str(axis.block_field)), rows_out, labels,
                                                    models.meta["backbone_full"])
    return SweepResult(data, ctx.out, run_info={"executor": executor, "cells_reused": resumed})


#: block fields where a smaller value is cheaper (the "cheapest within the CI" question has an answer; k: fewer
#: verified weights)
CHEAPER_WHEN_SMALLER = ("epochs", "calibration_images", "n_reads", "k")


def block_budget_summary(axis: Any, own: Any, points: list[dict[str, Any]], labels: list[str],
                         full_meta: Mapping[str, Any]) -> dict[str, Any]:
    """A block sweep's answer: per chip-block point, the block's time in backbone epochs and the per-chip
    paired accuracy difference against the config's own value ``own`` (the reference); per method, the
    cheapest value whose paired 95% CI reaches 0 (not measurably worse than the config's) at the first time.

    Adds ``block_time_over_backbone_epoch`` and ``paired_vs_config`` to each chip-block point in place."""
    name = axis.block_field
    epoch_s = float(full_meta["train_time_s"]) / int(full_meta["epochs"])
    curves = [p for p in points if p["role"] == "curve"]
    ref = {p["method"]: p for p in curves if p["axis_value"] == own}
    cheapest: dict[str, Any] = {}
    for p in curves:
        r = ref[p["method"]]
        p["block_time_over_backbone_epoch"] = p["block_time_s"] / epoch_s
        p["paired_vs_config"] = {t: summarize([a[i] - b[i] for a, b in zip(p["per_chip"], r["per_chip"])]).to_dict()
                                 for i, t in enumerate(labels)}
        d = p["paired_vs_config"][labels[0]]
        ok = p["axis_value"] == own or d["ci95_high"] >= 0.0
        if name in CHEAPER_WHEN_SMALLER and ok and p["axis_value"] < cheapest.get(p["method"], float("inf")):
            cheapest[p["method"]] = p["axis_value"]
    return {"key": axis.key, "config_value": own, "backbone_epoch_s": epoch_s,
            "backbone_epoch_definition": "training time of (b) / its epochs (full_epochs)",
            "criterion": f"paired per-chip accuracy difference at t={labels[0]} against the config's {axis.key} = "
                         f"{own}: its 95% CI reaches 0 (not measurably worse)",
            "cheapest_within_ci": cheapest if name in CHEAPER_WHEN_SMALLER else None}


class SweepResult:
    """``data`` is exactly what ``sweep.json`` holds; ``out`` is the sweep's directory.

    ``sweep.json`` depends only on config, seed, axis, package versions and torch threads (plus the wall-clock
    keys of ``tsb_aihw.utils.timing``), so an executor run, a resumed run and a clean run write the same file.
    Where and how this run happened (executor, cells reused from an earlier run) goes to ``sweep_run.json``.
    """

    def __init__(self, data: dict[str, Any], out: str | Path, run_info: dict[str, Any] | None = None):
        self.data = data
        self.out = Path(out)
        self.run_info = run_info or {}

    @property
    def points(self) -> list[dict[str, Any]]:
        return self.data["points"]

    @property
    def kind(self) -> str:
        return self.data["kind"]

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def accuracies(self) -> dict[str, list[list[float]]]:
        """``{point id: per-chip accuracies [chip][time]}``: the raw numbers, for comparisons."""
        return {p["id"]: p["per_chip"] for p in self.points}

    # -- files ------------------------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per (point, time): the summary over chips."""
        out = []
        for p in self.points:
            for t in self.data["time_labels"]:  # time order (a reloaded sweep.json has its keys sorted)
                a = p["accuracy"][t]
                out.append({"kind": self.kind, "axis_value": p["axis_value"], "preset": p["preset"],
                            "method": p["method"], "label": p["label"], "role": p["role"], "time": t,
                            "chips": a["n"], "acc_mean": a["mean"], "acc_std": a["std"],
                            "acc_ci95_low": a["ci95_low"], "acc_ci95_high": a["ci95_high"],
                            "verified_fraction": p["verified_fraction"], "pulses": p["cost"].get("pulses"),
                            "program_energy_j": p["cost"].get("energy_j"), "block_time_s": p.get("block_time_s"),
                            "block_time_over_backbone_epoch": p.get("block_time_over_backbone_epoch"),
                            "paired_vs_config_mean": p.get("paired_vs_config", {}).get(t, {}).get("mean")})
        return out

    def chip_rows(self) -> list[dict[str, Any]]:
        return [{"kind": self.kind, "axis_value": p["axis_value"], "preset": p["preset"], "method": p["method"],
                 "chip": chip, "time": t, "accuracy": acc}
                for p in self.points for chip, accs in enumerate(p["per_chip"])
                for t, acc in zip(self.data["time_labels"], accs)]

    def save(self) -> list[Path]:
        """``sweep.json`` (everything), ``sweep.csv`` (summaries), ``sweep_chips.csv`` (raw samples),
        ``sweep_run.json`` (executor, reused cells)."""
        files = [atomic_write_json(self.out / "sweep.json", self.data),
                 atomic_write_csv(self.out / "sweep.csv", self.rows()),
                 atomic_write_csv(self.out / "sweep_chips.csv", self.chip_rows())]
        if self.run_info:
            files.append(atomic_write_json(self.out / "sweep_run.json", self.run_info))
        return files

    # -- plots ------------------------------------------------------------------------------------------
    def plot(self, out: str | Path | None = None) -> list[Path]:
        """The kind's plot(s), PNG + PDF (one per evaluation time, except the accuracy-vs-time plot)."""
        from tsb_aihw.sweeps.plotting import plot_sweep

        files = plot_sweep(self.data, Path(out) if out is not None else self.out)
        self.data["plots"] = [p.name for p in files]
        return files


def load_sweep(path: str | Path) -> SweepResult:
    """A saved sweep (``sweep.json`` or its directory) as a :class:`SweepResult`."""
    p = Path(path)
    if p.is_dir():
        p = p / "sweep.json"
    run = p.parent / "sweep_run.json"
    return SweepResult(read_json(p), p.parent, read_json(run) if run.exists() else None)
