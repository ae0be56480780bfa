"""Does the statistical fast mode give AIHWKit's chip accuracies? Paired per chip, with a yardstick.

The same programmed and drifted chips (``Chip(analog, preset, seed, i)``: chip ``i`` of a study seeded
``--seed``) of the committed CIFAR-10 VGG-8 σ 0.1 noise-injection backbone (b) (``results/cifar10-vgg8``,
``full_noise_injection.pt``) are evaluated at ``--time`` on ``--images`` seeded random images of the held-out
test part of the dataset the model was trained on (the models.json's dataset: the seeded 70/10/20 split of the
offline CIFAR-10 training archive), through several forwards ("arms"), each with the periphery's output noise
seeded per chip:

- ``aihwkit``: AIHWKit's own forward (``fast="off"``), eval seed ``chip.rng("eval", t)`` (``evaluation.chip_accuracy``);
- ``aihwkit_alt``: the same forward with another eval seed (``chip.rng("eval", t, "alt")``): the yardstick,
  AIHWKit against itself, i.e. how far two evaluations of one chip differ by the periphery noise alone;
- ``exact`` / ``exact_alt``: the exact fast mode at the same two seeds; it reproduces AIHWKit's forward bit for
  bit, so it must give the same accuracies (checked; it is 3-4x cheaper, so ``--reference exact`` can stand in
  for AIHWKit's forward on many chips once the check holds on the chips where both ran);
- ``statistical`` / ``statistical_alt``: the statistical fast mode (its own noise stream) at the two seeds;
- ``louder``: the statistical mode with every tile's ``out_noise`` x ``--louder`` (a positive control: a
  known modelling error of about the size in question, to show the paired measurement resolves it).

Default: ``exact`` and ``statistical`` on every chip, ``exact_alt`` (the yardstick) on the first
``--yardstick-chips``, and AIHWKit's own forward at both seeds (``aihwkit``, ``aihwkit_alt``) on the first
``--check-chips`` chips of each preset, where the exact arms must equal them (the "check" rows): AIHWKit's
forward costs 2-2.5x the exact mode's on this model, and an hour on a shared 2-core machine does not hold
40 chips x 2 presets x 3 passes of it.

Paired differences per chip (mean, Student-t 95 % CI over chips) are written with every per-chip number,
the config, seeds, CPU and versions to ``--json``, which is also the checkpoint: a re-run with the same
config skips finished chips (per preset), so an interrupted run resumes.

    nice -n 10 .venv/bin/python benchmarks/statistical_bias.py --presets pcm rram --chips 40 --images 2000
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ARMS = ("aihwkit", "aihwkit_alt", "exact", "exact_alt", "statistical", "statistical_alt", "louder")
MODE = {"aihwkit": "off", "exact": "exact", "statistical": "statistical", "louder": "statistical"}
# (label, arm a, arm b): difference a - b per chip. "exact" is AIHWKit's forward bit for bit (same seed, same
# numbers; the "check" rows show it on the chips where both ran), so it stands in for AIHWKit where it ran alone.
PAIRS = (
    ("statistical - aihwkit", "statistical", "aihwkit"),
    ("statistical - exact (= AIHWKit)", "statistical", "exact"),
    ("statistical_alt - exact_alt (= AIHWKit)", "statistical_alt", "exact_alt"),
    ("yardstick: aihwkit_alt - aihwkit", "aihwkit_alt", "aihwkit"),
    ("yardstick: exact_alt - exact (= AIHWKit against itself)", "exact_alt", "exact"),
    ("yardstick: statistical_alt - statistical", "statistical_alt", "statistical"),
    ("check: exact - aihwkit (must be 0)", "exact", "aihwkit"),
    ("check: exact_alt - aihwkit_alt (must be 0)", "exact_alt", "aihwkit_alt"),
    ("control: louder - statistical", "louder", "statistical"),
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def source_id(path: Path) -> dict[str, str]:
    """The code a run measured: the last commit touching ``path`` and the file's sha256 (uncommitted edits show)."""
    import hashlib
    import subprocess

    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(path)], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"path": str(path.relative_to(ROOT)), "last_commit": commit or "unknown",
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


@contextlib.contextmanager
def louder(model: Any, factor: float) -> Iterator[None]:
    """Every analog tile's output noise x ``factor`` for the block (the fast path reads it on entry)."""
    ios = [t.rpu_config.forward for t in model.analog_tiles()]
    saved = [io.out_noise for io in ios]
    for io in ios:
        io.out_noise = io.out_noise * factor
    try:
        yield
    finally:
        for io, value in zip(ios, saved):
            io.out_noise = value


def evaluate_arm(chip: Any, arm: str, loader: Any, t: float, factor: float) -> float:
    """Accuracy of ``chip`` at time ``t`` through ``arm``'s forward, output noise seeded per chip (and arm seed)."""
    from tsb_aihw.evaluation.accuracy import evaluate_accuracy

    base = arm[:-4] if arm.endswith("_alt") else arm
    keys: tuple = ("eval", repr(float(t))) + (("alt",) if arm.endswith("_alt") else ())
    chip.drift(t)  # the same drifted chip for every arm (drift and read noise are seeded by chip and time)
    with chip.rng(*keys), (louder(chip.model, factor) if arm == "louder" else contextlib.nullcontext()):
        return evaluate_accuracy(chip.model, loader, fast=MODE[base])


def committed_model_and_images(models_dir: Path, model_file: str, images: int, image_seed: int,
                               batch: int) -> tuple[Any, Any, dict[str, Any]]:
    """(digital model of ``models_dir/model_file`` in eval mode, a loader of ``images`` seeded random images of
    the held-out test part of the dataset it was trained on, the config that names both): the set-up every
    chip-accuracy benchmark on a committed backbone shares (here and ``bf16_product.py``)."""
    import torch
    from torch.utils.data import Subset

    from tsb_aihw.data.loader import make_loader
    from tsb_aihw.data.registry import get_dataset
    from tsb_aihw.models.registry import get_model
    from tsb_aihw.utils.io import read_json

    models = read_json(models_dir / "models.json", dict)
    entry = next(m for m in models["models"] if m["file"] == model_file)
    digital = get_model(**entry["model"])
    digital.load_state_dict(torch.load(models_dir / entry["file"], map_location="cpu"))
    digital.eval()
    dataset_name = models["dataset"]["name"]
    if dataset_name.startswith("imagefolder:") and not Path(dataset_name.split(":", 1)[1]).is_absolute():
        dataset_name = "imagefolder:" + str((ROOT / dataset_name.split(":", 1)[1]).resolve())
    test = get_dataset(dataset_name, "test", seed=0)
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(image_seed))[:images]
    config = {"model": entry["model"], "model_file": f"{models_dir.name}/{entry['file']}",
              "dataset": models["dataset"]["name"], "split": "test", "split_note": test.info.split_note,
              "images": len(pick), "image_seed": image_seed, "batch": batch}
    return digital, make_loader(Subset(test, pick.tolist()), batch), config


def summary(chips: dict[str, dict[str, float]]) -> dict[str, Any]:
    from tsb_aihw.evaluation.stats import summarize

    out: dict[str, Any] = {}
    rows = [chips[k] for k in sorted(chips, key=int)]
    for arm in ARMS:
        vals = [r[arm] for r in rows if arm in r]
        if vals:
            out[f"accuracy {arm}"] = summarize(vals).to_dict()
    for label, a, b in PAIRS:
        diffs = []
        for r in rows:
            if a in r and b in r:
                diffs.append(100.0 * (r[a] - r[b]))
        if diffs:  # one chip: the mean only (the check rows)
            s = summarize(diffs).to_dict()
            s["unit"] = "pp"
            s["chips_better"] = sum(d > 0 for d in diffs)
            s["chips_worse"] = sum(d < 0 for d in diffs)
            out[label] = s
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", default=["pcm", "rram"])
    p.add_argument("--chips", type=int, default=40)
    p.add_argument("--first-chip", type=int, default=0)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--time", default="1d", help="drift time after programming (e.g. 1d)")
    p.add_argument("--seed", type=int, default=0, help="study seed: chip i is Chip(model, preset, seed, i)")
    p.add_argument("--image-seed", type=int, default=0, help="seed of the random choice of test images")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--arms", nargs="+", default=["exact", "statistical"], choices=ARMS)
    p.add_argument("--yardstick-arms", nargs="*", default=["exact_alt"], choices=ARMS,
                   help="arms run on the first --yardstick-chips chips of each preset")
    p.add_argument("--yardstick-chips", type=int, default=40)
    p.add_argument("--check-arms", nargs="*", default=["aihwkit", "aihwkit_alt"], choices=ARMS,
                   help="arms run only on the first --check-chips chips of each preset")
    p.add_argument("--check-chips", type=int, default=1)
    p.add_argument("--louder", type=float, default=1.1, help="out_noise factor of the 'louder' control arm")
    p.add_argument("--models", default=str(ROOT / "results" / "cifar10-vgg8"))
    p.add_argument("--model-file", default="full_noise_injection.pt")
    p.add_argument("--label", default="current", help="run label in the json (e.g. before/after a fix)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=str(HERE / "statistical_bias.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    from tsb_aihw.analog import to_analog
    from tsb_aihw.analog.chip import Chip
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation.times import parse_times
    from tsb_aihw.utils.io import atomic_write_json, read_json
    from tsb_aihw.utils.memory import keep_freed_memory
    from tsb_aihw.utils.provenance import provenance

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    (t,) = parse_times([args.time])
    digital, loader, config = committed_model_and_images(Path(args.models), args.model_file, args.images,
                                                         args.image_seed, args.batch)
    config |= {"time": args.time, "time_s": t, "study_seed": args.seed, "louder": args.louder,
               "threads": args.threads}
    out_path = Path(args.json)
    data: dict[str, Any] = read_json(out_path, dict) if out_path.exists() else {}
    runs = data.setdefault("runs", {})
    run = runs.setdefault(args.label, {"config": config, "presets": {}})
    if run["config"] != config:
        raise SystemExit(f"{out_path}: run {args.label!r} has another config ({run['config']}); use another "
                         "--label or --json")
    data["description"] = __doc__.split("\n\n")[0]
    data["command"] = "nice -n 10 .venv/bin/python benchmarks/statistical_bias.py " + " ".join(
        a for a in __import__("sys").argv[1:])
    data["cpu"] = cpu_name()
    run["fast_eval_source"] = source_id(ROOT / "tsb_aihw" / "analog" / "fast_eval.py")
    data["provenance"] = provenance().to_dict()

    def save() -> None:
        atomic_write_json(out_path, data)

    chips = {}
    for name in args.presets:
        preset = load_preset(name)
        chips[name] = (preset, to_analog(digital, preset, verify="none").eval())
        run["presets"].setdefault(name, {"chips": {}, "seconds": {}})

    def summarise(name: str) -> None:
        rec = run["presets"][name]
        rec["summary"] = summary({k: {a: v for a, v in r.items() if a in ARMS} for k, r in rec["chips"].items()})

    for i in range(args.first_chip, args.first_chip + args.chips):  # chips outer: the presets advance together
        for name in args.presets:
            preset, analog = chips[name]
            rec = run["presets"][name]
            row = rec["chips"].setdefault(str(i), {})
            secs = rec["seconds"].setdefault(str(i), {})
            k = i - args.first_chip
            arms = (list(args.arms) + (list(args.yardstick_arms) if k < args.yardstick_chips else [])
                    + (list(args.check_arms) if k < args.check_chips else []))
            todo = [a for a in arms if a not in row]
            if not todo:
                continue
            chip = Chip(analog, preset, args.seed, i)
            start = time.perf_counter()
            digest = chip.program()
            secs["program"] = time.perf_counter() - start
            if row.setdefault("digest", digest) != digest:
                raise SystemExit(f"{name} chip {i}: programmed digest {digest} != stored {row['digest']}")
            for arm in todo:
                start = time.perf_counter()
                row[arm] = evaluate_arm(chip, arm, loader, t, args.louder)
                secs[arm] = time.perf_counter() - start
                print(f"{args.label} {name} chip {i} {arm}: {row[arm]:.4f} ({secs[arm]:.1f} s)", flush=True)
            summarise(name)
            save()
    for name in args.presets:
        summarise(name)
        save()
        for label, s in run["presets"][name]["summary"].items():
            if s.get("unit") == "pp":
                print(f"{args.label} {name} {label}: {s['mean']:+.3f} pp [{s['ci95_low']:+.3f}, "
                      f"{s['ci95_high']:+.3f}] over {s['n']} chips", flush=True)

if __name__ == "__main__":
    main()
