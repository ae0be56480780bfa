"""Bad input gets one clear line (problem + fix) and exit code 2, never a traceback from torch or AIHWKit.

Each case is tried the way a user meets it: a ``tsb-aihw`` command (run in-process through ``main``, which is
what the console script calls; ``test_console_script_exit_code`` checks one case in a real subprocess) or a
Python API call. ``python tests/test_bad_input.py`` prints the table of docs/reliability.md from these cases.
"""
from __future__ import annotations

import contextlib
import copy
import io
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import yaml

from tsb_aihw.errors import TSBError

from helpers import tiny_study

BASE = tiny_study(backbone={"full_epochs": 1, "early_epochs": 1}, methods=["full_noise_injection"])


@dataclass
class Case:
    """One bad input: what was tried, the command or call, and patterns the message must contain."""

    input: str
    how: str  # shown in the table; ``{cfg}`` / ``{tmp}`` are filled in
    run: Callable[[Path], Any]  # returns CLI args (list) or calls the API (raises)
    expect: list[str] = field(default_factory=list)  # regexes the message must match (problem, fix)
    needs_patch: str | None = None  # a patch to a file helper D does not own, listed in the report


def _config(tmp: Path, name: str, change: Callable[[dict], Any] | None = None, text: str | None = None) -> str:
    path = tmp / f"{name}.yaml"
    if text is None:
        cfg = copy.deepcopy(BASE)
        if change:
            change(cfg)
        text = yaml.safe_dump(cfg)
    path.write_text(text)
    return str(path)


def _set(key: str, value: Any) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        node = cfg
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return change


def _run(tmp: Path, name: str, key: str | None = None, value: Any = None, *extra: str) -> list[str]:
    cfg = _config(tmp, name, _set(key, value) if key else None)
    return ["run", "--config", cfg, "--out", str(tmp / f"out-{name}"), "--no-progress", *extra]


def _preset_file(tmp: Path, name: str, text: str) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def _bytes_file(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return str(path)


def _plain_file(tmp: Path) -> str:
    path = tmp / "afile"
    path.write_text("")
    return str(path)


def _corrupt_cells(tmp: Path) -> list[str]:
    args = _run(tmp, "cells")
    from tsb_aihw.devices import load_preset

    cells = tmp / "out-cells" / load_preset("nvcim-gaussian").folder_name / "store.json"
    cells.parent.mkdir(parents=True)
    cells.write_text('{"schema": "tsb-aihw-store/1", "cells": {')  # hand-edited / damaged
    return args


def _corrupt_checkpoint(tmp: Path) -> list[str]:
    args = _run(tmp, "ckpt")
    from tsb_aihw.devices import load_preset

    ckpt = tmp / "out-ckpt" / load_preset("nvcim-gaussian").folder_name / "checkpoints" / "backbone_full.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x80\x02 damaged")
    return args


def _archive(tmp: Path, name: str, data: bytes) -> str:
    path = tmp / name
    path.write_bytes(data)
    return f"imagefolder:{path}"


def _truncated_targz(tmp: Path) -> bytes:
    import tarfile

    folder = tmp / "tree"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (folder / cls / f"{i}.png").write_bytes(bytes(range(256)) * 40)
    path = tmp / "whole.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="tree")
    return path.read_bytes()[:-200]


def _mismatched_checkpoint(tmp: Path) -> list[str]:
    from tsb_aihw.models import get_model

    path = tmp / "wide.pt"
    torch.save(get_model("lenet3", num_classes=10, in_channels=1, width=1.0, input_size=8).state_dict(), path)
    return ["drift", "--checkpoint", str(path), "--model", "lenet3", "--width", "0.5", "--dataset", "digits",
            "--chips", "2", "--times", "0", "--out", str(tmp / "out-drift"), "--no-progress"]


def _nan_model() -> torch.nn.Module:
    from tsb_aihw.models import get_model

    model = get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    return model


def _api_to_analog_nan(tmp: Path) -> None:
    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset

    to_analog(_nan_model(), load_preset("nvcim-gaussian"), verify="none")


def _api_train_nan_inputs(tmp: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from tsb_aihw.models import get_model
    from tsb_aihw.training import train_noise_injection

    x = torch.rand(32, 1, 8, 8)
    x[3, 0, 2, 2] = float("nan")
    model = get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8)
    train_noise_injection(model, DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), 16),
                          noise_std=0.1, epochs=1, progress=False)


def _api_train_nan_weights(tmp: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from tsb_aihw.training import train_noise_injection

    train_noise_injection(_nan_model(), DataLoader(TensorDataset(torch.rand(32, 1, 8, 8), torch.zeros(32, dtype=torch.long)), 16),
                          noise_std=0.0, epochs=1, progress=False)


def _api_train_inf_lr(tmp: Path) -> None:
    from tsb_aihw.training import train_noise_injection

    train_noise_injection(_nan_model(), [], noise_std=0.0, epochs=1, lr=float("inf"), progress=False)


def _api_evaluate_nan_inputs(tmp: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from tsb_aihw.analog import to_analog
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation import evaluate_accuracy
    from tsb_aihw.models import get_model

    x = torch.rand(32, 1, 8, 8)
    x[20, 0, 1, 1] = float("nan")
    model = get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8).eval()
    analog = to_analog(model, load_preset("pcm"), verify="none")
    evaluate_accuracy(analog, DataLoader(TensorDataset(x, torch.zeros(32, dtype=torch.long)), 16))


def _api_load_state_mismatch(tmp: Path) -> None:
    from tsb_aihw.models import get_model
    from tsb_aihw.models.pretrained import load_state_checked

    wide = get_model("lenet3", num_classes=10, in_channels=1, width=1.0, input_size=8)
    load_state_checked(get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8),
                       wide.state_dict(), "wide.pt")


def _alias_bomb() -> str:
    """A few hundred bytes of nested YAML aliases that expand to 10**9 strings ("billion laughs")."""
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    return "\n".join(lines) + "\nchips: *i\n"


def _image_tree(tmp: Path, classes: tuple[str, ...] = ("a", "b"), n: int = 6) -> Path:
    from PIL import Image

    for cls in classes:
        (tmp / "tree" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(tmp / "tree" / cls / f"{i}.png")
    return tmp / "tree"


def _api_tree(kind: str) -> Callable[[Path], Any]:
    def run(tmp: Path) -> None:
        import os

        import numpy as np
        from PIL import Image

        from tsb_aihw.data import get_dataset

        tree = _image_tree(tmp, ("a",) if kind == "single" else ("a", "b"))
        if kind == "dangling":
            (tree / "a" / "gone.png").symlink_to(tmp / "nowhere.png")
        elif kind == "fifo":
            os.mkfifo(tree / "b" / "pipe.png")
        elif kind == "float":
            Image.fromarray(np.full((8, 8), 1000.0, dtype=np.float32)).save(tree / "b" / "hdr.tiff")
        get_dataset(f"imagefolder:{tree}", "train", root=tmp / "cache")
    return run


def _api_one_bit_adc(tmp: Path) -> None:
    from tsb_aihw.devices import load_preset

    load_preset("pcm", periphery__adc_bits=1).rpu_config(verified=False)


def _api_killed_worker(tmp: Path) -> None:
    import os

    from tsb_aihw.parallel import ProcessExecutor

    with ProcessExecutor(1, threads=None) as ex:  # os._exit kills the worker process mid-task, like the OOM killer
        list(ex.run(os._exit, [3]))


def _api_fast_eval_env(tmp: Path) -> None:
    from tsb_aihw.analog import fast_eval

    fast_eval.check_fast_eval_env({"TSB_AIHW_FAST_EVAL": "maybe"})


def _api_fast_not_bool(tmp: Path) -> None:
    from tsb_aihw.analog.fast_eval import fast_eval_enabled

    fast_eval_enabled("maybe")  # bool("maybe") is True: a truthiness check would run the fast path


def _api_accuracy(value: float) -> Callable[[Path], Any]:
    def run(tmp: Path) -> None:
        from tsb_aihw.utils.io import check_accuracy

        check_accuracy(value, f"{tmp}/cells.json: cells.tsb/0.accuracies[0]")
    return run


def _api_json_shape(tmp: Path) -> None:
    from tsb_aihw.utils.io import read_json

    path = tmp / "cells.json"
    path.write_text("[1, 2, 3]\n")
    read_json(path, expect=dict)


def _api_disk_full(tmp: Path) -> None:
    import errno
    import os
    from unittest import mock

    from tsb_aihw.utils import io as tio

    (tmp / "results.json").write_text('{"kept": true}\n')
    with mock.patch.object(tio, "_write_all", side_effect=OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))):
        tio.atomic_write_json(tmp / "results.json", {"new": 1})


def _fake_study(tmp: Path) -> str:
    """A folder that passes for a finished study (results.json with methods): export checks its destination."""
    (tmp / "study").mkdir()
    (tmp / "study" / "results.json").write_text('{"methods": {}}')
    return str(tmp / "study")


def _edited_result(tmp: Path, value: Any) -> str:
    import json

    data = json.loads((Path(__file__).resolve().parents[1] / "results/cifar10-vgg8-sigma0.2/results.json").read_text())
    data["methods"]["tsb"]["per_chip"][3][0] = value
    (tmp / "edited").mkdir()
    (tmp / "edited" / "results.json").write_text(json.dumps(data))
    return f"{tmp / 'edited'}#tsb"


def _api_models_json_outside(tmp: Path) -> None:
    import json

    from tsb_aihw.pipeline.adopt import find_trained
    from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
    from tsb_aihw.pipeline.config import study_config_from_dict

    key = checkpoint_keys(study_config_from_dict(BASE), 0.1)["backbone_full"]
    (tmp / "exported").mkdir()
    entry = {"file": "../x.pt", "checkpoint": "backbone_full.pt", "model": {"name": "lenet3", "num_classes": 10, "in_channels": 1, "width": 0.5, "input_size": 32}, "tsb_block": None, "base": None,
             "meta": {"train_time_s": 1.0}, "key": key}
    (tmp / "exported" / "models.json").write_text(json.dumps({"how_to_load": "", "dataset": None,
                                                              "models": [entry]}))
    find_trained(tmp / "exported", "backbone_full", key)


def _api_checkpoint_without_weights(tmp: Path) -> None:
    from tsb_aihw.pipeline.adopt import find_trained
    from tsb_aihw.pipeline.checkpoint_keys import checkpoint_keys
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.utils.store import key_fingerprint

    key = checkpoint_keys(study_config_from_dict(BASE), 0.1)["backbone_full"]
    (tmp / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"fingerprint": key_fingerprint(key), "key": key, "meta": {"train_time_s": 1.0}},
               tmp / "run" / "checkpoints" / "backbone_full.pt")
    find_trained(tmp / "run", "backbone_full", key)


def _api(fn: Callable[[], Any]) -> Callable[[Path], Any]:
    return lambda tmp: fn()


def _cases() -> list[Case]:
    from tsb_aihw.data import get_dataset
    from tsb_aihw.devices import load_preset
    from tsb_aihw.evaluation.times import parse_time
    from tsb_aihw.models import get_model
    from tsb_aihw.parallel import make_executor
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.utils.device import resolve_device
    from tsb_aihw.utils.yamlfile import load_yaml_file

    good_preset = (Path(__file__).resolve().parents[1] / "device_presets" / "pcm.yaml").read_text()
    return [
        # names
        Case("unknown preset name", "config `preset: nope`", lambda t: _run(t, "p", "preset", "nope"),
             [r"preset: unknown device preset 'nope'; valid names: ideal, nvcim-gaussian, pcm, rram"]),
        Case("unknown preset name", "`tsb-aihw demo --preset nvcim --quick`",
             lambda t: ["demo", "--preset", "nvcim", "--quick", "--out", str(t / "o")], [r"valid names: ideal"]),
        Case("unknown model name", "config `model: {name: lenet}`", lambda t: _run(t, "m", "model.name", "lenet"),
             [r"model.name = 'lenet' is not a registered model \(did you mean 'lenet3'\?\); valid: lenet3, resnet18, vgg8"]),
        Case("unknown dataset name", "`tsb-aihw demo --dataset mnsit --quick`",
             lambda t: ["demo", "--dataset", "mnsit", "--quick", "--out", str(t / "o")],
             [r"unknown dataset 'mnsit' \(did you mean 'mnist'\?\); valid names: cifar10, digits, mnist, mnist5k"]),
        Case("unknown method", "config `methods: [tsb, magic]`", lambda t: _run(t, "me", "methods", ["tsb", "magic"]),
             [r"methods\[1\] = 'magic': unknown method; allowed: one of 'backbone_early'"]),
        Case("unknown name (API)", "`load_preset('nope')`", _api(lambda: load_preset("nope")), [r"valid names"]),
        Case("unknown name (API)", "`get_model('resnet')`", _api(lambda: get_model("resnet")), [r"choose one of"]),
        Case("unknown name (API)", "`get_dataset('cifar', 'train')`", _api(lambda: get_dataset("cifar", "train")),
             [r"valid names"]),
        # study config YAML
        Case("config file missing", "`tsb-aihw run --config nope.yaml`",
             lambda t: ["run", "--config", str(t / "nope.yaml"), "--out", str(t / "o")], [r"not found; pass --config"]),
        Case("malformed YAML", "config text `chips: [1,`",
             lambda t: ["run", "--config", _config(t, "bad", text="chips: [1,\n"), "--out", str(t / "o")],
             [r"malformed YAML \(line 2, column 1: .*\); fix the syntax"]),
        Case("YAML not a mapping", "config text `- 1`",
             lambda t: ["run", "--config", _config(t, "list", text="- 1\n"), "--out", str(t / "o")],
             [r"top level must be a mapping"]),
        Case("--sigma not numbers", "`tsb-aihw run --sigma 0.1,high`", lambda t: _run(t, "sg", None, None, "--sigma",
             "0.1,high"), [r"--sigma '0.1,high': give numbers separated by commas"]),
        Case("--sigma on a preset without it", "config `preset: pcm` + `--sigma 0.2`",
             lambda t: _run(t, "sgp", "preset", "pcm", "--sigma", "0.2"),
             [r"--sigma sets noise.sigma, which preset 'pcm' .* does not have; drop it or use preset: nvcim-gaussian"]),
        Case("--sigma out of range", "`tsb-aihw run --sigma -0.1`", lambda t: _run(t, "sgr", None, None, "--sigma=-0.1"),
             [r"--sigma -0.1: .*noise.sigma"]),
        Case("--budgets not numbers", "`tsb-aihw frontier --budgets 0.2,half`",
             lambda t: ["frontier", "--budgets", "0.2,half", "--out", str(t / "o")],
             [r"--budgets '0.2,half': give numbers separated by commas"]),
        Case("unknown / misspelt key", "config `chipz: 3`", lambda t: _run(t, "k", "chipz", 3),
             [r"unknown key 'chipz' in the config \(did you mean 'chips'\?\); valid keys:"]),
        Case("wrong type", "config `chips: many`", lambda t: _run(t, "ty", "chips", "many"),
             [r"chips = 'many' has the wrong type \(str\); expected an integer"]),
        Case("out of range", "config `model: {width: 0}`", lambda t: _run(t, "w", "model.width", 0),
             [r"model.width = 0.0 is out of range; allowed: 0 < width <= 64"]),
        Case("out of range", "config `backbone: {lr: -1}`", lambda t: _run(t, "lr", "backbone.lr", -1),
             [r"backbone.lr = -1.0 is out of range; allowed: 0 < lr <= 10"]),
        Case("out of range", "config `data: {eval_limit: 0}`", lambda t: _run(t, "el", "data.eval_limit", 0),
             [r"data.eval_limit = 0 is out of range; allowed: 1 <= eval_limit <= 1000000000"]),
        Case("out of range", "config `seed: -1`", lambda t: _run(t, "s", "seed", -1),
             [r"seed = -1 is out of range; allowed: 0 <= seed <= 4294967295"]),
        Case("zero chips", "config `chips: 0`", lambda t: _run(t, "c0", "chips", 0),
             [r"chips = 0 is out of range; allowed: 2 <= chips <= 100000 \(need at least 2 chips"]),
        Case("zero chips", "`tsb-aihw run --chips 0`", lambda t: _run(t, "c0b", None, None, "--chips", "0"),
             [r"chips = 0 is out of range"]),
        Case("zero chips", "`tsb-aihw drift --chips 0`",
             lambda t: ["drift", "--chips", "0", "--dataset", "digits", "--out", str(t / "o")], [r"chips = 0 is out of range; allowed: 2 <= chips"]),
        Case("zero chips (API)", "`study_config_from_dict({'chips': 0})`",
             _api(lambda: study_config_from_dict({"chips": 0})), [r"chips = 0 is out of range"]),
        # times
        Case("negative time", "config `times: [0, -1h]`", lambda t: _run(t, "tn", "times", [0, "-1h"]),
             [r"times\[1\]: drift time '-1h' is negative; times are seconds after programming \(>= 0\)"]),
        Case("non-numeric time", "config `times: [soon]`", lambda t: _run(t, "ts", "times", ["soon"]),
             [r"cannot parse drift time 'soon'; use a number of seconds or a number with a unit"]),
        Case("unknown time unit", "`tsb-aihw drift --times 0,1fortnight`",
             lambda t: ["drift", "--times", "0,1fortnight", "--dataset", "digits", "--out", str(t / "o")],
             [r"unknown time unit 'fortnight'"]),
        Case("non-finite time", "config `times: [.nan]`",
             lambda t: ["run", "--config", _config(t, "tnan", text=yaml.safe_dump(BASE).replace("- 0", "- .nan")),
                        "--out", str(t / "o")], [r"not finite"]),
        Case("negative time (API)", "`parse_time(-5)`", _api(lambda: parse_time(-5)), [r"negative"]),
        Case("non-numeric time (API)", "`parse_time(None)`", _api(lambda: parse_time(None)), [r"has type NoneType"]),
        # presets
        Case("preset override out of range", "`tsb-aihw demo --sigma 5 --quick`",
             lambda t: ["demo", "--sigma", "5", "--quick", "--out", str(t / "o")],
             [r"nvcim-gaussian.yaml \(with overrides noise.sigma\): noise.sigma = 5.0 is out of range; allowed: 0 <= sigma <= 2"]),
        Case("preset override: unknown key", "config `preset_overrides: {noise__sigmaa: 1}`",
             lambda t: _run(t, "po", "preset_overrides", {"noise__sigmaa": 1}), [r"did you mean 'noise.sigma'\?"]),
        Case("malformed preset YAML", "`tsb-aihw demo --preset bad.yaml` (`noise: {model: pcm`)",
             lambda t: ["demo", "--preset", _preset_file(t, "badp", "name: x\nnoise: {model: pcm\n"), "--quick",
                        "--out", str(t / "o")], [r"bad.*\.yaml: malformed YAML \(line 3, column 1: .*\)"]),
        Case("preset value out of range", "preset YAML `g_max: -3`",
             lambda t: ["demo", "--preset", _preset_file(t, "rangep", good_preset.replace("g_max: 25.0", "g_max: -3")),
                        "--quick", "--out", str(t / "o")],
             [r"noise.g_max = -3.0 is out of range; allowed: 0 < g_max <= 10000"]),
        Case("preset value of the wrong type", "preset YAML `adc_bits: eight`",
             lambda t: ["demo", "--preset", _preset_file(t, "typep", re.sub(r"adc_bits: \d+", "adc_bits: eight", good_preset)),
                        "--quick", "--out", str(t / "o")], [r"periphery.adc_bits = 'eight' has the wrong type"]),
        Case("preset key missing", "preset YAML without `write_verify.tolerance`",
             lambda t: ["demo", "--preset", _preset_file(t, "missp", re.sub(r"\n  tolerance:[^\n]*", "", good_preset)),
                        "--quick", "--out", str(t / "o")], [r"missing key 'write_verify.tolerance'"]),
        # device
        Case("`--device cuda` without a GPU", "`tsb-aihw run --device cuda`",
             lambda t: _run(t, "dev", None, None, "--device", "cuda"),
             [r"--device cuda requested but no CUDA GPU is available; use --device cpu \(or auto\)"]),
        Case("unsupported device", "`tsb-aihw demo --device mps --quick`",
             lambda t: ["demo", "--device", "mps", "--quick", "--out", str(t / "o")], [r"only cpu and cuda are supported"]),
        Case("`cuda` without a GPU (API)", "`resolve_device('cuda')`", _api(lambda: resolve_device("cuda")),
             [r"no CUDA GPU"]),
        # data
        Case("dataset archive missing", "config `data: {name: imagefolder:/nonexistent.tar.gz}`",
             lambda t: _run(t, "am", "data.name", "imagefolder:/nonexistent.tar.gz"), [r"does not exist"]),
        Case("dataset archive not gzip", "`--dataset imagefolder:junk.tar.gz` (random bytes)",
             lambda t: ["demo", "--dataset", _archive(t, "junk.tar.gz", b"PK\x03\x04 zip?"), "--quick", "--out", str(t / "o")],
             [r"is not gzip-compressed .*re-create it with `tar czf"]),
        Case("dataset archive truncated", "`--dataset imagefolder:cut.tar.gz` (last 200 bytes cut)",
             lambda t: ["demo", "--dataset", _archive(t, "cut.tar.gz", _truncated_targz(t)), "--quick", "--out", str(t / "o")],
             [r"is corrupt or truncated.*copy or download it again"]),
        Case("dataset not downloaded", "`tsb-aihw demo --dataset mnist --quick` (no copy, no `data.download`)",
             lambda t: ["demo", "--dataset", "mnist", "--quick", "--out", str(t / "o")],
             [r"MNIST not found: .*Set data.download: true in the config .*point data.root in the config"]),
        # output
        Case("output directory not writable", "`--out <file>/out` (a path under a regular file)",
             lambda t: _run(t, "ow", None, None)[:4] + [_plain_file(t) + "/out"],
             [r"output directory .* is not writable \(Not a directory\); pass --out"]),
        Case("output directory not writable", "`--out /sys/tsb` (read-only file system)",
             lambda t: _run(t, "ow2", None, None)[:4] + ["/sys/tsb"], [r"is not writable .*; pass --out"]),
        Case("finished-cells file damaged", "`out/<preset>/store.json` truncated by hand, then `tsb-aihw run`",
             _corrupt_cells, [r"store.json is not valid JSON; it was edited or damaged; pass another --out, or add --move-aside"]),
        # checkpoints and weights
        Case("checkpoint of another architecture", "`tsb-aihw drift --checkpoint wide.pt --width 0.5`",
             _mismatched_checkpoint, [r"wide.pt does not match the .*shape mismatch.*conv1.weight \(32, 1, 5, 5\) vs model \(16, 1, 5, 5\)"]),
        Case("checkpoint file damaged", "`tsb-aihw drift --checkpoint junk.pt` (not a torch file)",
             lambda t: ["drift", "--checkpoint", _bytes_file(t, "junk.pt", b"not a checkpoint"),
                        "--dataset", "digits", "--out", str(t / "o")],
             [r"cannot read .*junk.pt as a torch checkpoint \(UnpicklingError: .*\); it is corrupt"]),
        Case("checkpoint of another architecture (API)", "`load_state_checked(model, other_state, 'wide.pt')`",
             _api_load_state_mismatch, [r"wide.pt does not match the LeNet3 architecture: shape mismatch: .* vs model"]),
        Case("study checkpoint damaged", "`out/.../checkpoints/backbone_full.pt` overwritten, then `tsb-aihw run`",
             _corrupt_checkpoint, [r"cannot read .*backbone_full.pt as a torch checkpoint .*delete it"]),
        Case("NaN weights at conversion (API)", "`to_analog(model_with_nan, preset)`", _api_to_analog_nan,
             [r"to_analog: the model holds NaN/inf values in conv1.weight.*retrain"]),
        Case("NaN inputs in training (API)", "`train_noise_injection(model, loader_with_nan, ...)`",
             _api_train_nan_inputs, [r"training input batch holds NaN/inf values \(epoch 1"]),
        Case("NaN inputs at evaluation (API)", "`evaluate_accuracy(analog_model, loader_with_nan)`",
             _api_evaluate_nan_inputs, [r"evaluation batch 1 holds NaN/inf inputs.*clean the dataset"]),
        Case("NaN weights in training (API)", "`train_noise_injection(model_with_nan, loader, ...)`",
             _api_train_nan_weights, [r"model weights are NaN/inf \(epoch 1, after 0 samples: conv1.weight\).*lower the learning rate"]),
        Case("non-finite learning rate (API)", "`train_noise_injection(..., lr=float('inf'))`",
             _api_train_inf_lr, [r"learning rate must be a finite number > 0, got inf"]),
        Case("wrong CLI argument type", "`tsb-aihw run --chips x`",
             lambda t: _run(t, "argx", None, None, "--chips", "x"), [r"argument --chips: invalid int value: 'x'"]),
        # issue 16: image trees
        Case("single class folder (API)", "`get_dataset('imagefolder:tree', 'train')`, tree/a/*.png only",
             _api_tree("single"), [r"has a single class folder \(a\); a classifier needs at least 2 classes"]),
        Case("dangling symlink in a class folder (API)", "`tree/a/gone.png -> nowhere.png`", _api_tree("dangling"),
             [r"gone.png is a broken \(dangling\) symlink .*remove it"]),
        Case("FIFO named like an image (API)", "`mkfifo tree/b/pipe.png`", _api_tree("fifo"),
             [r"pipe.png is named like an image but is not a regular file"]),
        Case("float TIFF outside [0, 1] (API)", "`tree/b/hdr.tiff`, float pixels of 1000", _api_tree("float"),
             [r"hdr.tiff: float pixels span \[1000, 1000\]; only floats in \[0, 1\]"]),
        # issue 16: YAML files
        Case("YAML alias bomb", "config of nested aliases (`b: &b [*a, *a, ...]`, 10**9 values)",
             lambda t: ["run", "--config", _config(t, "bomb", text=_alias_bomb()), "--out", str(t / "o")],
             [r"bomb.yaml: the YAML aliases expand to more than 100,000 values"]),
        Case("duplicate YAML key", "config text `chips: 2` ... `chips: 3`",
             lambda t: ["run", "--config", _config(t, "dup", text="chips: 2\nseed: 1\nchips: 3\n"),
                        "--out", str(t / "o")],
             [r"dup.yaml: line 3: duplicate key 'chips' \(first on line 1\); YAML keeps only the last one"]),
        Case("config not UTF-8", "config bytes `chips: \\xff`",
             lambda t: ["run", "--config", _bytes_file(t, "latin.yaml", b"seed: 1\nchips: \xff\n"),
                        "--out", str(t / "o")],
             [r"latin.yaml: this study config is not UTF-8 text \(byte 0xff on line 2\); save it as UTF-8"]),
        Case("empty config", "zero-byte config file",
             lambda t: ["run", "--config", _config(t, "empty", text=""), "--out", str(t / "o")],
             [r"empty.yaml: this study config is empty .*write its keys"]),
        Case("empty config", "config of comments only",
             lambda t: ["run", "--config", _config(t, "comments", text="# chips: 20\n\n"), "--out", str(t / "o")],
             [r"comments.yaml: this study config is empty"]),
        Case("directory as a file (API)", "`load_yaml_file(<a directory>, 'study config')`",
             lambda t: load_yaml_file(t, "study config"), [r"study config file .* is a directory, not a file"]),
        Case("directory as a file", "`tsb-aihw run --config <a directory>`",
             lambda t: ["run", "--config", str(t), "--out", str(t / "o")], [r"is a directory, not a file"]),
        Case("directory as a preset file (API)", "`load_preset('<a directory>/')`",
             lambda t: load_preset(f"{t}/"), [r"device preset file .* is a directory, not a file"]),
        Case("preset not UTF-8", "`tsb-aihw demo --preset latin.yaml` (byte 0xe9)",
             lambda t: ["demo", "--preset", _bytes_file(t, "latin.yaml", b"name: caf\xe9\n"), "--quick",
                        "--out", str(t / "o")], [r"latin.yaml: this device preset is not UTF-8 text"]),
        # issue 16: preset schema bounds
        Case("1-bit ADC (API)", "`load_preset('pcm', periphery__adc_bits=1).rpu_config(False)`", _api_one_bit_adc,
             [r"periphery.adc_bits = 1 is out of range; allowed: 2 <= adc_bits <= 24"]),
        Case("400-digit number (API)", "`load_preset('pcm', noise__g_max=10**400)`",
             _api(lambda: load_preset("pcm", noise__g_max=10**400)),
             [r"noise.g_max = <int with ~401 digits> is too large; give a finite number"]),
        Case("5000-digit integer (API)", "`load_preset('pcm', periphery__dac_bits=10**5000)`",
             _api(lambda: load_preset("pcm", periphery__dac_bits=10**5000)),
             [r"periphery.dac_bits = <int with ~5001 digits> is out of range"]),
        Case("overrides of the wrong type (API)", "`load_preset('pcm', overrides='noise.g_max=3')`",
             _api(lambda: load_preset("pcm", overrides="noise.g_max=3")),
             [r"preset overrides must be a mapping of dotted keys to values"]),
        Case("override key of the wrong type (API)", "`load_preset('pcm', overrides={5: 1})`",
             _api(lambda: load_preset("pcm", overrides={5: 1})), [r"preset override key 5 has type int, not str"]),
        Case("over-long preset name", "preset YAML `name: xxx...` (300 characters)",
             lambda t: ["demo", "--preset", _preset_file(t, "longn", re.sub(r"name: [^\n]*", "name: " + "x" * 300,
                                                                           good_preset, count=1)),
                        "--quick", "--out", str(t / "o")], [r"name = 'x+\.\.\.x+' is 300 characters long; allowed: at most 100"]),
        # issue 16: executors
        Case("negative thread count", "`tsb-aihw run --threads -1`",
             lambda t: _run(t, "thr", None, None, "--threads", "-1"),
             [r"--threads -1: torch threads per cell must be an integer >= 1"]),
        Case("negative thread count (API)", "`make_executor(threads=0)`", _api(lambda: make_executor(threads=0)),
             [r"--threads 0: torch threads per cell must be an integer >= 1"]),
        Case("malformed scheduler address", "`tsb-aihw run --scheduler localhost:8786` (no tcp://)",
             lambda t: _run(t, "sch", None, None, "--scheduler", "localhost:8786"),
             [r"--scheduler 'localhost:8786': unknown transport 'localhost'|not of the form scheme://host:port"]),
        Case("malformed scheduler address (API)", "`make_executor(scheduler='tcp://host:99999')`",
             _api(lambda: make_executor(scheduler="tcp://host:99999")), [r"port 99999 is out of range"]),
        Case("killed pool worker (API)", "`ProcessExecutor(1).run(os._exit, [3])` (the worker dies mid-task)",
             _api_killed_worker, [r"worker process died .*re-run the same command to resume"]),
        # issue 16: fast evaluation switch
        Case("bad TSB_AIHW_FAST_EVAL (API)", "`check_fast_eval_env({'TSB_AIHW_FAST_EVAL': 'maybe'})`",
             _api_fast_eval_env, [r"TSB_AIHW_FAST_EVAL='maybe' is not understood; use one of \('off', 'exact', 'statistical'\)"]),
        Case("fast switch not a mode (API)", "`fast_eval_enabled('maybe')`", _api_fast_not_bool,
             [r"fast='maybe' is not understood; use one of"]),
        # issue 33: the commands added since (export, compare, --models-from, sweep and frontier axes)
        Case("over-long --out name", "`tsb-aihw run --out xxx...` (a 300-byte name)",
             lambda t: _run(t, "ln")[:4] + [str(t / ("x" * 300))], [r"the path is too long for the file system .*"
                                                                    r"pass a shorter --out"]),
        Case("over-long --out path", "`tsb-aihw run --out a/b/...` (25 names of 200 bytes)",
             lambda t: _run(t, "lp")[:4] + [str(t.joinpath(*["y" * 200] * 25))], [r"too long for the file system"]),
        Case("export into a file", "`tsb-aihw export --to afile`",
             lambda t: ["export", "--from", str(t), "--to", _plain_file(t)],
             [r"--to .*afile is a file, not a directory"]),
        Case("export into a read-only place", "`tsb-aihw export --to /sys/tsb-export`",
             lambda t: ["export", "--from", _fake_study(t), "--to", "/sys/tsb-export"], [r"is not writable"]),
        Case("non-finite sweep value", "`tsb-aihw sweep sigma --values 0.1,1e400`",
             lambda t: ["sweep", "sigma", "--config", _config(t, "swf"), "--values", "0.1,1e400",
                        "--out", str(t / "o")],
             [r"sweep sigma: value '1e400' is not finite"]),
        Case("non-finite sweep value", "`tsb-aihw sweep sigma --values nan`",
             lambda t: ["sweep", "sigma", "--config", _config(t, "swn"), "--values", "nan", "--out", str(t / "o")],
             [r"value 'nan' is not finite"]),
        Case("unknown --extra-baselines", "`tsb-aihw frontier --extra-baselines clean`",
             lambda t: ["frontier", "--quick", "--extra-baselines", "clean", "--out", str(t / "o")],
             [r"extra_baselines\[0\] = 'clean': unknown optional baseline; allowed: one of 'vanilla'"]),
        Case("empty --budgets", "`tsb-aihw frontier --budgets ''`",
             lambda t: ["frontier", "--quick", "--budgets", "", "--out", str(t / "o")], [r"budgets .*at least one"]),
        Case("directory as --checkpoint", "`tsb-aihw drift --checkpoint <a directory>`",
             lambda t: ["drift", "--checkpoint", str(t), "--dataset", "digits", "--chips", "2", "--times", "0",
                        "--out", str(t / "o"), "--no-progress"], [r"checkpoint .* is a directory, not a file"]),
        Case("models.json entry outside its folder (API)", "`find_trained(exported, ...)`, `file: ../x.pt`",
             _api_models_json_outside, [r"models.json: models\[0\].file = '../x.pt' points outside"]),
        Case("adopted checkpoint without weights (API)", "`find_trained(run, ...)`, checkpoint lacks `state_dict`",
             _api_checkpoint_without_weights, [r"backbone_full.pt is not a tsb-aihw checkpoint \(no state_dict\)"]),
        Case("impossible stored accuracy", "`tsb-aihw compare edited#tsb ...` (a per-chip 7.5)",
             lambda t: ["compare", _edited_result(t, 7.5), "results/cifar10-vgg8-sigma0.2#tsb"],
             [r"per_chip\[3\]\[0\] = 7.5 is out of range"]),
        Case("non-numeric stored accuracy", "`tsb-aihw compare edited#tsb ...` (a per-chip '0.8')",
             lambda t: ["compare", _edited_result(t, "0.8"), "results/cifar10-vgg8-sigma0.2#tsb"],
             [r"has the wrong type"]),
        Case("a store given to compare", "`tsb-aihw compare OUT/store.json#tsb ...`",
             lambda t: ["compare", f"{_bytes_file(t, 'store.json', b'{}')}#tsb", "results/cifar10-vgg8-sigma0.2#tsb"],
             [r"is not a result file"]),
        # issue 16: result files
        Case("disk full while writing a result (API)", "`atomic_write_json` with the write failing ENOSPC",
             _api_disk_full,
             [r"cannot write .*results.json: no space left on the device .*free space and re-run to resume"]),
        Case("saved JSON of the wrong shape (API)", "`read_json(cells.json, expect=dict)` of `[1, 2, 3]`",
             _api_json_shape, [r"cells.json holds list \[1, 2, 3\] where a mapping \(JSON object\) was saved"]),
        Case("impossible stored accuracy (API)", "`check_accuracy(-3, ...)` (edited result file)", _api_accuracy(-3),
             [r"accuracy -3 is impossible \(accuracies are fractions in \[0, 1\]\)"]),
        Case("impossible stored accuracy (API)", "`check_accuracy(7.5, ...)`", _api_accuracy(7.5),
             [r"accuracy 7.5 is impossible"]),
        Case("impossible stored accuracy (API)", "`check_accuracy(float('nan'), ...)`", _api_accuracy(float("nan")),
             [r"accuracy nan is impossible"]),
    ]


def attempt(case: Case, tmp: Path) -> tuple[str, str]:
    """(message the user sees, exit code or exception type) for one case."""
    from tsb_aihw.cli.main import main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = case.run(tmp)
            if not isinstance(args, list):
                return "(no error)", "returned"
            try:
                code = main(args)
            except SystemExit as exc:  # argparse: usage line + error line, exit 2
                code = exc.code
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        return (lines[-1] if lines else "(nothing printed)"), str(code)
    except TSBError as exc:
        return str(exc), f"raises {type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - what we test against: anything but a TSBError
        return f"{type(exc).__name__}: {exc}", "TRACEBACK"


CASES = _cases()


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("case", CASES, ids=[f"{i:02d}-{c.input}" for i, c in enumerate(CASES)])
def test_bad_input_gets_one_clear_line(case: Case, tmp_path: Path) -> None:
    if case.needs_patch:
        pytest.xfail(f"needs {case.needs_patch} (helper D report); remove needs_patch once applied")
    message, code = attempt(case, tmp_path)
    assert code in ("2", "raises ConfigError", "raises DataError", "raises TSBError"), f"{code}: {message}"
    assert "\n" not in message and "Traceback" not in message
    for pattern in case.expect:
        assert re.search(pattern, message), f"{pattern!r} not in {message!r}"


def test_console_script_exit_code(tmp_path: Path) -> None:
    """The installed entry point really exits 2 with one line on stderr (no traceback)."""
    proc = subprocess.run([sys.executable, "-m", "tsb_aihw.cli.main", "run", "--config", str(tmp_path / "x.yaml"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"tsb-aihw run: error: study config file {tmp_path / 'x.yaml'} not found; "
                                                "pass --config with a YAML file (see configs/)"]


def markdown_table(tmp: Path, only_patched: bool = False) -> str:
    """The docs/reliability.md table (``only_patched``: just the cases that wait for a patch)."""
    rows = ["| input tried | how | what the user sees | exit code |", "|---|---|---|---|"]
    for i, case in enumerate(CASES):
        if only_patched and not case.needs_patch:
            continue
        sub = tmp / f"case{i:02d}"
        sub.mkdir()
        message, code = attempt(case, sub)
        message = message.replace(str(sub), "<tmp>").replace(str(Path(__file__).resolve().parents[1]), "<repo>")
        code = code.replace("raises ", "raises `") + "`" if code.startswith("raises") else code
        note = f" (now; fixed by {case.needs_patch})" if case.needs_patch else ""
        rows.append(f"| {case.input}{note} | {case.how} | `{message.replace('|', '/')}` | {code} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        print(markdown_table(Path(d), only_patched="--patched" in sys.argv))
