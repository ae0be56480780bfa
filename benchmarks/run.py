"""`make bench`: the performance figures of issue 7, each a ratio measured side by side in this one run.

Writes ``benchmarks/results.json`` (figures, per-round seconds, config, seed, provenance) and
``benchmarks/results.md`` (the table), and prints the table. Figures:

- ``analog_forward_over_digital``: our evaluation path (``tsb_aihw.analog.fast_eval``) / the digital forward,
  vgg8 at ``--width``, batch ``--batch`` of 3x32x32, preset ``pcm`` (8-bit DAC/ADC, out_noise 0.04,
  abs-max NM), programmed and drifted to 1 day; ``aihwkit_forward_over_digital``: AIHWKit's own forward of
  the same analog model. Rounds interleave digital / ours / AIHWKit; the median of per-round ratios.
  ``analog_forward_over_digital`` is the statistical mode with its fp32 product.
- ``analog_forward_bf16_over_digital``: the statistical mode with the bf16 product (issue 36) / the fp32 digital
  forward, same model and batch, its own interleaved rounds (``--bf16-repeats``; default ``--repeats`` where the
  CPU computes bf16 natively, else 1 round without warm-up: emulated bf16 runs 10-70x slower, so the figure is
  recorded with ``bf16.native: false`` and a note, not skipped). The CPU's model name and flags are in ``cpu``.
- ``mc_study_seconds``, ``mc_study_over_digital``: ``monte_carlo`` over ``--chips`` chips x ``--times``
  (program, drift, evaluate on a fixed seeded test set of ``--test-size`` images); right after every analog
  evaluation the digital model evaluates the same test set (timed apart), so the denominator is the same
  number of digital passes under the same load. ``..._aihwkit`` rows: the same with the fast path off on
  ``--aihwkit-chips`` chips (AIHWKit is too slow for the full study here).
- ``mc_memory_over_digital``: peak RSS growth (sampled every 2 ms; not tracemalloc, which cannot see torch's
  allocations) of a Monte-Carlo study (``--memory-chips`` chips x the times) over that of one digital
  evaluation of the same test set, each in a fresh subprocess.
- ``tsb_training_speedup``, ``verified_fraction``, ``mapping_cost_reduction``: the claims of a short
  pipeline run (``demo_configs(quick=True, presets=["pcm"])``, ``--pipeline-chips`` chips).

    .venv/bin/python benchmarks/run.py                 # the defaults (about 10-15 minutes on 2 busy cores)
    .venv/bin/python benchmarks/run.py --quick --out /tmp/bench   # tiny smoke run
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bf16_product import cpu_record  # noqa: E402
from timing import PeakRSS, interleaved, ratio_summary  # noqa: E402

TARGETS = {"analog_forward_over_digital": 1.5, "analog_forward_bf16_over_digital": 1.0,
           "resnet18_forward_over_digital": 1.5, "mc_study_over_digital": 1.5,
           "mc_memory_over_digital": 1.5, "block_training_over_backbone_epoch": 0.25}
DRIFT_TIMES = ["1s", "1h", "1d", "1mo", "1y"]
SECTIONS = ("forward", "resnet18", "scaling", "mc", "memory", "block", "pipeline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=0.5, help="vgg8 width (0.5: convs 32..256 channels)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds for the forward ratios")
    p.add_argument("--aihwkit-repeats", type=int, default=3)
    p.add_argument("--bf16-repeats", type=int, default=None,
                   help="rounds of the bf16-product forward (default: --repeats where bf16 is native, else 1)")
    p.add_argument("--chips", type=int, default=10, help="MC study chips (10 x 5 times: 50 evaluations)")
    p.add_argument("--times", nargs="+", default=DRIFT_TIMES)
    p.add_argument("--test-size", type=int, default=256)
    p.add_argument("--aihwkit-chips", type=int, default=1)
    p.add_argument("--memory-chips", type=int, default=2)
    p.add_argument("--pipeline-chips", type=int, default=2)
    p.add_argument("--scaling-widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--scaling-batch", type=int, default=32)
    p.add_argument("--scaling-batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--scaling-chips", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--scaling-repeats", type=int, default=1)
    p.add_argument("--block-chips", type=int, default=2)
    p.add_argument("--block-images", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--block-epochs", type=int, nargs="+", default=[2])
    p.add_argument("--block-full-epochs", type=int, default=8)
    p.add_argument("--block-backbone-epochs", type=int, default=4)
    p.add_argument("--no-pipeline", action="store_true", help="skip the short pipeline run")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="which figures to measure (default: all)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: the machine is shared)")
    p.add_argument("--preset", default="pcm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument("--memory-probe", choices=["digital", "mc", "aihwkit"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.width, args.batch, args.repeats, args.aihwkit_repeats = 0.125, 32, 2, 1
        args.chips, args.times, args.test_size, args.memory_chips = 2, ["1h", "1y"], 64, 1
        args.scaling_widths, args.scaling_batch, args.scaling_batches, args.scaling_chips = [0.125], 8, [8], [1]
        args.block_chips, args.block_images, args.block_epochs, args.block_full_epochs = 2, [64], [1], 1
        args.block_backbone_epochs = 1
    return args


# ------------------------------------------------------------------------------------------------ models
def build(args: argparse.Namespace, model: str = "vgg8", width: float | None = None
          ) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(digital model, the same on a programmed chip drifted to 1 day); vgg8 at ``--width`` by default."""
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model
    from tsb_aihw.utils.seeding import derive_seed

    torch.manual_seed(derive_seed(args.seed, "model"))
    digital = get_model(model, num_classes=10, in_channels=3, width=args.width if width is None else width,
                        input_size=32).eval()
    analog = to_analog(digital, load_preset(args.preset), verify="none").eval()
    torch.manual_seed(derive_seed(args.seed, "chip"))
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    return digital, analog


def test_loader(args: argparse.Namespace) -> DataLoader:
    """A fixed, seeded synthetic test set (timing does not depend on the pixel values' meaning)."""
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.test_size, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.test_size,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=args.batch)


# ---------------------------------------------------------------------------------------------- figures
@torch.no_grad()
def bench_forward(args: argparse.Namespace, model: str = "vgg8", aihwkit: bool = True,
                  bf16: bool = False) -> dict[str, Any]:
    """Interleaved rounds of digital / statistical / exact fast modes (and AIHWKit's forward, fewer rounds; and
    with ``bf16``, the statistical mode's bf16 product against digital, see :func:`bf16_rounds`)."""
    from tsb_aihw.analog.fast_eval import fast_forward

    digital, analog = build(args, model)
    x = torch.randn(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed + 1))

    def mode(m: str, product: str = "fp32") -> Any:
        def run() -> None:
            with fast_forward(analog, m, product):
                analog(x)
        return run

    with fast_forward(analog) as skipped:
        pass
    fast = interleaved({"digital": lambda: digital(x), "statistical": mode("statistical"), "exact": mode("exact")},
                       args.repeats)
    out: dict[str, Any] = {
        "model": model, "skipped_layers": skipped,
        "seconds": {"digital": fast["digital"], "statistical": fast["statistical"], "exact": fast["exact"]},
        "analog_forward_over_digital": ratio_summary(fast["statistical"], fast["digital"]),
        "exact_forward_over_digital": ratio_summary(fast["exact"], fast["digital"]),
        "statistical_over_exact": ratio_summary(fast["statistical"], fast["exact"]),
    }
    if aihwkit:
        slow = interleaved({"digital": lambda: digital(x), "aihwkit": lambda: analog(x)}, args.aihwkit_repeats)
        out["seconds"].update(digital_with_aihwkit=slow["digital"], aihwkit=slow["aihwkit"])
        out["aihwkit_forward_over_digital"] = ratio_summary(slow["aihwkit"], slow["digital"])
    if bf16:
        native, rounds = bf16_rounds(args)
        half = interleaved({"digital": lambda: digital(x), "bf16": mode("statistical", "bf16")}, rounds,
                           warmup=1 if native else 0)
        out["seconds"].update(digital_with_bf16=half["digital"], bf16=half["bf16"])
        out["analog_forward_bf16_over_digital"] = ratio_summary(half["bf16"], half["digital"])
        out["bf16"] = {"native": native, "rounds": rounds, "note": (
            "bf16 computed natively (amx_bf16 / avx512_bf16 or a GPU)" if native else
            "bf16 emulated on this CPU (no amx_bf16 / avx512_bf16 flag): 10-70x slower than fp32 by design, "
            "so this ratio says nothing about the bf16 target, which is for AMX/GPU machines; auto picks fp32 here")}
    return out


def bf16_rounds(args: argparse.Namespace) -> tuple[bool, int]:
    """(the CPU computes bf16 natively, rounds of the bf16 forward): where it is emulated, one round is enough
    to record it (each takes 10-70x an fp32 forward, which ``make bench``'s ~10 minutes cannot hold 5 times)."""
    from tsb_aihw.analog.fast_eval import native_bf16_device

    native = native_bf16_device(torch.device("cpu"))
    default = args.repeats if native else 1
    return native, max(1, default if args.bf16_repeats is None else args.bf16_repeats)


@torch.no_grad()
def bench_scaling(args: argparse.Namespace) -> dict[str, Any]:
    """Cost vs width (vgg8 and resnet18, batch ``--scaling-batch``), vs batch (vgg8 at ``--width``) and vs
    chips (Monte-Carlo at one drift time): each point a median of interleaved rounds, plus PNG plots."""
    from tsb_aihw.analog.fast_eval import fast_forward

    rounds = max(1, args.scaling_repeats)
    out: dict[str, Any] = {"width": [], "batch": [], "chips": []}

    def point(model: str, width: float, batch: int) -> dict[str, Any]:
        digital, analog = build(args, model, width)
        x = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed + 1))
        fns = {"digital": lambda: digital(x)}
        for m in ("statistical", "exact"):
            fns[m] = (lambda m=m: _fast_call(fast_forward, analog, m, x))
        t = interleaved(fns, rounds)
        return {"model": model, "width": width, "batch": batch, "seconds": t,
                **{f"{m}_over_digital": ratio_summary(t[m], t["digital"])["median"] for m in ("statistical", "exact")}}

    for model in ("vgg8", "resnet18"):
        for w in args.scaling_widths:
            out["width"].append(point(model, w, args.scaling_batch))
    for b in args.scaling_batches:
        out["batch"].append(point("vgg8", args.width, b))
    for chips in args.scaling_chips:
        sub = argparse.Namespace(**{**vars(args), "times": args.times[:1]})
        r = _mc(sub, chips, fast="statistical")
        out["chips"].append({"chips": chips, "mc_study_seconds": r["mc_study_seconds"],
                             "mc_study_over_digital": r["mc_study_over_digital"]})
    out["plots"] = _scaling_plots(out, Path(args.out))
    return out


def _fast_call(fast_forward: Any, analog: torch.nn.Module, mode: str, x: torch.Tensor) -> None:
    with fast_forward(analog, mode):
        analog(x)


def _scaling_plots(r: dict[str, Any], out_dir: Path) -> list[str]:
    """scaling_width.png, scaling_batch.png, scaling_chips.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for model in ("vgg8", "resnet18"):
        pts = [p for p in r["width"] if p["model"] == model]
        for m, style in (("statistical", "-o"), ("exact", "--s")):
            ax.plot([p["width"] for p in pts], [p[f"{m}_over_digital"] for p in pts], style, label=f"{model} {m}")
    ax.set(xlabel="width multiplier", ylabel="analog / digital forward", title="cost vs width (pcm)")
    ax.axhline(1.5, color="grey", lw=0.8, ls=":")
    ax.legend(fontsize=7)
    files.append(_save(fig, out_dir / "scaling_width.png"))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for m, style in (("statistical", "-o"), ("exact", "--s")):
        ax.plot([p["batch"] for p in r["batch"]], [p[f"{m}_over_digital"] for p in r["batch"]], style, label=m)
    ax.set(xscale="log", xlabel="batch", ylabel="analog / digital forward", title="cost vs batch (vgg8, pcm)")
    ax.legend(fontsize=7)
    files.append(_save(fig, out_dir / "scaling_batch.png"))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([p["chips"] for p in r["chips"]], [p["mc_study_seconds"] for p in r["chips"]], "-o")
    ax.set(xlabel="chips", ylabel="Monte-Carlo study seconds", title="cost vs chips (vgg8, pcm, 1 drift time)")
    files.append(_save(fig, out_dir / "scaling_chips.png"))
    plt.close("all")
    return files


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def bench_block(args: argparse.Namespace) -> dict[str, Any]:
    """Per-chip block training from the block cache vs one backbone epoch (benchmarks/block_calibration.py)."""
    import block_calibration

    argv = ["--chips", str(args.block_chips), "--images", *map(str, args.block_images), "--epochs",
            *map(str, args.block_epochs), "--full-epochs", str(args.block_full_epochs), "--lr", "0.02",
            "--backbone-epochs", str(args.block_backbone_epochs),
            "--seed", str(args.seed), "--out", str(Path(args.out) / "block_calibration.json")]
    return block_calibration.run(block_calibration.parse_args(argv))


def _mc(args: argparse.Namespace, chips: int, fast: bool | str) -> dict[str, Any]:
    """monte_carlo with a digital pass timed right after each analog evaluation (same load, same count)."""
    from tsb_aihw.evaluation import evaluate_accuracy, monte_carlo

    digital, analog = build(args)
    loader = test_loader(args)
    digital_s: list[float] = []
    eval_s: list[float] = []

    def evaluate(model: torch.nn.Module, data: Any) -> float:
        t0 = time.perf_counter()
        acc = evaluate_accuracy(model, data, fast=fast)
        t1 = time.perf_counter()
        evaluate_accuracy(digital, data)
        digital_s.append(time.perf_counter() - t1)
        eval_s.append(t1 - t0)
        return acc

    t0 = time.perf_counter()
    res = monte_carlo(analog, loader, chips=chips, times=args.times, seed=args.seed, evaluate=evaluate,
                      progress=False)
    wall = time.perf_counter() - t0
    study = wall - sum(digital_s)
    return {"chips": chips, "times": list(args.times), "evaluations": len(eval_s), "test_size": args.test_size,
            "mc_study_seconds": study, "digital_passes_seconds": sum(digital_s),
            "mc_study_over_digital": study / sum(digital_s),
            "evaluation_seconds": sum(eval_s), "program_drift_overhead_seconds": study - sum(eval_s),
            "mean_accuracy": statistics.mean(a for row in res.accuracies for a in row)}


def bench_mc(args: argparse.Namespace) -> dict[str, Any]:
    return {"fast": _mc(args, args.chips, fast="statistical"), "aihwkit": _mc(args, args.aihwkit_chips, fast="off")}


def memory_probe(args: argparse.Namespace) -> dict[str, int]:
    """One measurement in this (fresh) process: peak RSS growth of the requested job."""
    from tsb_aihw.evaluation import evaluate_accuracy, monte_carlo

    digital, analog = build(args)
    loader = test_loader(args)
    with PeakRSS() as rss:
        if args.memory_probe == "digital":
            evaluate_accuracy(digital, loader)
        elif args.memory_probe == "aihwkit":
            evaluate_accuracy(analog, loader, fast=False)
        else:
            monte_carlo(analog, loader, chips=args.memory_chips, times=args.times, seed=args.seed, progress=False)
    return {"start_bytes": rss.start, "peak_bytes": rss.peak, "delta_bytes": rss.delta}


def bench_memory(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"method": "peak RSS growth over the RSS at the start of the job, sampled every 2 ms "
                                     "in a fresh subprocess per job (tracemalloc cannot see torch tensors)"}
    for what in ("digital", "mc", "aihwkit"):
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, "--memory-probe", what],
                              capture_output=True, text=True, check=True)
        out[what] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["mc_memory_over_digital"] = out["mc"]["delta_bytes"] / max(out["digital"]["delta_bytes"], 1)
    out["mc_peak_rss_over_digital"] = out["mc"]["peak_bytes"] / out["digital"]["peak_bytes"]
    out["aihwkit_eval_memory_over_digital"] = out["aihwkit"]["delta_bytes"] / max(out["digital"]["delta_bytes"], 1)
    return out


def bench_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from tsb_aihw.pipeline.demo import demo_configs
    from tsb_aihw.pipeline.study import run_study

    cfg = demo_configs(quick=True, presets=[args.preset], chips=args.pipeline_chips, seed=args.seed)[0]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = run_study(cfg, Path(tmp), progress=False)
    claims = res.claims
    pick = {k: getattr(claim, "value", None) for k, claim in claims.headline().items()}
    return {"config": res.config, "wall_seconds": time.perf_counter() - t0, "claims": claims.to_dict(),
            "tsb_training_speedup": pick["training_speedup"], "verified_fraction": pick["verified_fraction"],
            "mapping_cost_reduction": pick["mapping_cost_reduction"]}


# ------------------------------------------------------------------------------------------------ report
def headline(r: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures (None: section not run)."""
    fwd, mem, pipe = r.get("forward") or {}, r.get("memory") or {}, r.get("pipeline") or {}
    res18, block = r.get("resnet18") or {}, r.get("block") or {}
    mc, mc_slow = (r.get("mc") or {}).get("fast") or {}, (r.get("mc") or {}).get("aihwkit") or {}
    return {
        "analog_forward_over_digital": (fwd.get("analog_forward_over_digital") or {}).get("median"),
        "analog_forward_bf16_over_digital": (fwd.get("analog_forward_bf16_over_digital") or {}).get("median"),
        "exact_forward_over_digital": (fwd.get("exact_forward_over_digital") or {}).get("median"),
        "aihwkit_forward_over_digital": (fwd.get("aihwkit_forward_over_digital") or {}).get("median"),
        "resnet18_forward_over_digital": (res18.get("analog_forward_over_digital") or {}).get("median"),
        "resnet18_exact_forward_over_digital": (res18.get("exact_forward_over_digital") or {}).get("median"),
        "mc_study_seconds": mc.get("mc_study_seconds"),
        "mc_study_over_digital": mc.get("mc_study_over_digital"),
        "mc_study_over_digital_aihwkit": mc_slow.get("mc_study_over_digital"),
        "mc_memory_over_digital": mem.get("mc_memory_over_digital"),
        "aihwkit_eval_memory_over_digital": mem.get("aihwkit_eval_memory_over_digital"),
        "tsb_training_speedup": pipe.get("tsb_training_speedup"),
        "verified_fraction": pipe.get("verified_fraction"),
        "mapping_cost_reduction": pipe.get("mapping_cost_reduction"),
        "block_training_over_backbone_epoch": block.get("block_training_over_backbone_epoch"),
        "block_cheapest_within_ci": block.get("cheapest_within_ci"),
        "block_full_over_backbone_epoch": ((block.get("variants") or [{}])[0]).get("over_backbone_epoch"),
    }


def table(r: dict[str, Any]) -> str:
    h, a = r["figures"], r["config"]
    fwd = r.get("forward")
    lines = [f"vgg8 width {a['width']}, batch {a['batch']}, preset {a['preset']}, {a['threads']} torch thread(s); "
             f"MC {a['chips']} chips x {len(a['times'])} times on {a['test_size']} images",
             "", "| figure | value | target | spread / note |", "|---|---|---|---|"]

    def row(name: str, note: str = "", judged: bool = True) -> None:
        v = h[name]
        target = TARGETS.get(name)
        val = "n/a" if v is None else (f"{v:.4%}" if name == "verified_fraction" else f"{v:.3g}")
        tgt = "" if target is None else f"<= {target}"
        if target is not None and v is not None:
            tgt += " (n/a on this CPU)" if not judged else " (met)" if v <= target else " (not met)"
        lines.append(f"| {name} | {val} | {tgt} | {note} |")

    def spread(key: str) -> str:
        f = (fwd or {}).get(key)
        return f"rounds {f['rounds']}: min {f['min']:.2f}, max {f['max']:.2f}" if f else "not run"

    mc = r.get("mc") or {}
    row("analog_forward_over_digital", spread("analog_forward_over_digital") + "; statistical mode, fp32 product")
    bf16 = (fwd or {}).get("bf16")
    row("analog_forward_bf16_over_digital", "not run" if not bf16 else
        f"{spread('analog_forward_bf16_over_digital')}; bf16 product over the fp32 digital forward; {bf16['note']}",
        judged=bool(bf16 and bf16["native"]))
    row("exact_forward_over_digital", "bit-exact mode (AIHWKit's random stream)")
    row("aihwkit_forward_over_digital", spread("aihwkit_forward_over_digital"))
    row("resnet18_forward_over_digital", "resnet18, same width/batch/preset, statistical mode")
    row("resnet18_exact_forward_over_digital")
    row("mc_study_seconds", f"{mc['fast']['evaluations']} evaluations incl. programming and drift" if mc else "")
    row("mc_study_over_digital", "vs the same number of digital test-set passes, interleaved")
    row("mc_study_over_digital_aihwkit", f"fast path off, {mc['aihwkit']['chips']} chip(s)" if mc else "")
    row("mc_memory_over_digital", "peak RSS growth, fresh subprocess each")
    row("aihwkit_eval_memory_over_digital", "one AIHWKit evaluation (fast path off)")
    row("tsb_training_speedup", "short pipeline run (quick demo config)")
    row("verified_fraction")
    row("mapping_cost_reduction")
    row("block_training_over_backbone_epoch", "cheapest cached recipe within the CI of the full one (n/a: none)")
    row("block_full_over_backbone_epoch", "uncached, whole training split (the pipeline's recipe)")
    secs = r.get("section_seconds") or {}
    if secs:
        lines += ["", "Wall time by section: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items())
                  + f"; total {sum(secs.values()):.0f} s"]
    return "\n".join(lines)


def _probe_argv(argv: list[str]) -> list[str]:
    """The command line for a memory-probe subprocess: the model/data options, no section choices."""
    out, skip = [], False
    for a in argv:
        if a == "--sections":
            skip = True
            continue
        if skip and not a.startswith("--"):
            continue
        skip = False
        if a != "--no-pipeline":
            out.append(a)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from tsb_aihw.utils.memory import keep_freed_memory

    keep_freed_memory()  # measure what the command line runs (memory probes are separate processes: they call it too)
    import warnings

    warnings.filterwarnings("ignore", module="aihwkit")
    if args.memory_probe:
        print(json.dumps(memory_probe(args)))
        return {}
    from tsb_aihw.utils.io import atomic_write_json, atomic_write_text, ensure_writable_dir
    from tsb_aihw.utils.provenance import provenance

    t0 = time.perf_counter()
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "memory_probe"}
    results: dict[str, Any] = {"config": config, "seed": args.seed, "cpu": cpu_record()}
    jobs: dict[str, Any] = {
        "forward": lambda: bench_forward(args, bf16=True),
        "resnet18": lambda: bench_forward(args, "resnet18", aihwkit=False),
        "scaling": lambda: bench_scaling(args),
        "mc": lambda: bench_mc(args),
        "memory": lambda: bench_memory(args, _probe_argv(argv)),
        "block": lambda: bench_block(args),
        "pipeline": lambda: bench_pipeline(args),
    }
    section_seconds: dict[str, float] = {}  # where the bench's own wall time goes (its ~10-minute budget)
    for name, job in jobs.items():
        if name not in args.sections or (name == "pipeline" and args.no_pipeline):
            continue
        print(f"{name} ...", flush=True)
        s0 = time.perf_counter()
        results[name] = job()
        section_seconds[name] = time.perf_counter() - s0
    results["section_seconds"] = section_seconds
    results["figures"] = headline(results)
    results["targets"] = TARGETS
    results["wall_seconds"] = time.perf_counter() - t0
    results["provenance"] = provenance().to_dict()
    out = ensure_writable_dir(args.out)
    atomic_write_json(out / "results.json", results)
    text = table(results)
    atomic_write_text(out / "results.md", f"# Benchmark results\n\n{text}\n\nCommand: "
                                          f"`benchmarks/run.py {' '.join(argv)}`\n")
    print(text)
    return results


if __name__ == "__main__":
    main()
