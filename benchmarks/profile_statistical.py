"""Where the statistical fast pass spends its time, part by part, optionally against an older fast_eval.py.

One chip (``--model`` at ``--width``, ``--preset``, programmed, drifted 1 d), batch ``--batch``: wall seconds
of interleaved rounds (digital, [before,] after: the median of per-round ratios), then profiled forwards
(``--profile-rounds``, interleaved; the median per part), split into the parts of the pass: the product
(``baddbmm``/``bmm``/``mm`` inside the convs), the output noise (``normal_``), unfold + input scale, noise
management (per-patch max), ADC, the rest of the convs (DAC round, output scales, per-chunk glue), the linear
layers and the model's own ops (pooling, BN, ReLU: as in digital). ``--before FILE`` loads another version of
``tsb_aihw/analog/fast_eval.py`` as the "before" arm, e.g.

    git show bfe4b2c~1:tsb_aihw/analog/fast_eval.py > /tmp/fast_eval_before.py
    nice -n 15 .venv/bin/python benchmarks/profile_statistical.py --model vgg8 --before /tmp/fast_eval_before.py
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

PRODUCT_OPS = {"aten::baddbmm_", "aten::baddbmm", "aten::bmm", "aten::mm", "aten::addmm"}
RANGES = {"#conv": ("_conv_forward_stat", None), "#linear": ("_linear_forward", None),
          "#unfold": ("_ConvGeom", ("unfold_scaled", "unfold")), "#nm": ("_ConvGeom", ("patch_max",)),
          "#adc": ("_adc_stat", None)}


def load_fast_eval(path: Path | None) -> ModuleType:
    """The working tree's fast_eval (None) or the file at ``path`` as a module of its own."""
    if path is None:
        from tsb_aihw.analog import fast_eval

        return fast_eval
    spec = importlib.util.spec_from_file_location(f"fast_eval_{abs(hash(str(path)))}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _ranged(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*a: Any, **k: Any) -> Any:
        with record_function(label):
            return fn(*a, **k)
    return run


def instrument(fe: ModuleType) -> None:
    """Wrap the pass's phases of ``fe`` in profiler ranges (module globals and _ConvGeom methods)."""
    for label, (name, methods) in RANGES.items():
        if methods is None:
            setattr(fe, name, _ranged(getattr(fe, name), label))
        else:
            cls = getattr(fe, name)
            for m in methods:
                setattr(cls, m, _ranged(getattr(cls, m), label))


def parts(prof: Any) -> dict[str, float]:
    """Milliseconds per part of one profiled analog forward (see the module docstring)."""
    events = prof.events()
    total = sum(e.self_cpu_time_total for e in events) / 1e3

    def within(e: Any, label: str) -> bool:
        while e.cpu_parent is not None:
            e = e.cpu_parent
            if e.name == label:
                return True
        return False

    # outermost ranges only (unfold_scaled calls unfold for narrow maps)
    ranges = {label: sum(e.cpu_time_total for e in events if e.name == label and not within(e, label)) / 1e3
              for label in RANGES}
    product = sum(e.self_cpu_time_total for e in events if e.name in PRODUCT_OPS and within(e, "#conv")) / 1e3
    noise = sum(e.self_cpu_time_total for e in events if e.name == "aten::normal_" and within(e, "#conv")) / 1e3
    rest = ranges["#conv"] - product - noise - ranges["#unfold"] - ranges["#nm"] - ranges["#adc"]
    return {"total": total, "product": product, "noise": noise, "unfold_and_scale": ranges["#unfold"],
            "noise_management": ranges["#nm"], "adc": ranges["#adc"], "conv_rest": rest,
            "linear": ranges["#linear"], "model_own_ops": total - ranges["#conv"] - ranges["#linear"]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vgg8")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--preset", default="pcm")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--profile-rounds", type=int, default=3, help="profiled forwards per arm (median per part)")
    p.add_argument("--before", type=Path, help="another fast_eval.py to compare against (same process)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset
    from tsb_aihw.models import get_model
    from tsb_aihw.utils.memory import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", module="aihwkit")
    warnings.filterwarnings("ignore", message=".*Profiler clears events")  # one profile per arm: nothing lost
    arms = {"after": load_fast_eval(None)}
    if args.before:
        arms = {"before": load_fast_eval(args.before), **arms}
    torch.manual_seed(0)
    digital = get_model(args.model, num_classes=10, in_channels=3, width=args.width, input_size=32).eval()
    analog = to_analog(digital, load_preset(args.preset), verify="none").eval()
    analog.program_analog_weights()
    analog.drift_analog_weights(86400.0)
    x = torch.randn(args.batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def arm(fe: ModuleType) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with fe.fast_forward(analog, "statistical"):
                return analog(x)
        return run

    fns: dict[str, Callable[[], Any]] = {"digital": lambda: digital(x), **{k: arm(fe) for k, fe in arms.items()}}
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        for r in range(args.rounds + 1):  # round 0 warms up
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                if r:
                    seconds[k].append(time.perf_counter() - t0)
        same = None
        if args.before:
            torch.manual_seed(2)
            a = fns["before"]()
            torch.manual_seed(2)
            same = bool(torch.equal(a, fns["after"]()))
        for fe in arms.values():
            instrument(fe)
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in arms}
        for _ in range(args.profile_rounds):  # interleaved, like the wall-clock rounds
            for k in arms:
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    fns[k]()
                rounds[k].append(parts(prof))
    profiled = {k: {part: statistics.median(r[part] for r in v) for part in v[0]} for k, v in rounds.items()}
    ratio = {k: statistics.median(a / d for a, d in zip(seconds[k], seconds["digital"])) for k in arms}
    out = {"model": args.model, "width": args.width, "preset": args.preset, "batch": args.batch,
           "rounds": args.rounds, "profile_rounds": args.profile_rounds, "seconds": seconds,
           "over_digital": ratio, "parts_ms": profiled,
           "identical_logits": same}
    if args.before:
        out["after_over_before"] = statistics.median(a / b for a, b in zip(seconds["after"], seconds["before"]))
    for k, v in profiled.items():
        print(f"{k}: {ratio[k]:.3f}x digital; profiled ms " + ", ".join(f"{n} {t:.0f}" for n, t in v.items()))
    if args.before:
        print(f"after / before {out['after_over_before']:.3f}; identical logits: {same}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, sort_keys=True))
    return out


if __name__ == "__main__":
    main()
