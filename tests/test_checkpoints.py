"""Checkpoints of trained backbones and blocks: digital weights + config, reloaded bit-identically elsewhere.

AIHWKit's ``state_dict`` of an analog model does not keep its programming state (docs/notes/aihwkit-1.1-facts.md), so the
study stores the DIGITAL weights and the config that produced them, and re-programs chips from those. These
tests train a tiny study, then load its checkpoints in a fresh Python process (nothing re-trained) and compare
logits bit for bit; a checkpoint of another architecture is refused with the keys that differ.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from tsb_aihw.errors import ConfigError
from tsb_aihw.models import get_model
from tsb_aihw.models.pretrained import load_state_checked
from tsb_aihw.utils.torchfile import read_state_dict
from tsb_aihw.pipeline.config import study_config_from_dict
from tsb_aihw.pipeline.tasks import StudyContext

from helpers import tiny_study

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = tiny_study(seed=5, methods=["full_noise_injection", "tsb_clean"])
MODELS = ("backbone_full", "backbone_early", "block_clean")

# Runs in a fresh interpreter: same config and output directory, training forbidden, logits saved.
CHILD = textwrap.dedent("""
    import json, sys, torch
    import tsb_aihw.pipeline.trained as T
    from tsb_aihw.pipeline.config import study_config_from_dict
    from tsb_aihw.pipeline.tasks import StudyContext

    def no_training(*a, **k):
        raise AssertionError("a checkpointed model was re-trained")

    T.train_block = T.train_noise_injection = no_training
    torch.set_num_threads(1)
    cfg, out, inputs, dest = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    study = StudyContext(study_config_from_dict(cfg), out, progress=False).models
    models = {"backbone_full": study.backbone("full"), "backbone_early": study.backbone("early"),
              "block_clean": study.fixed_block("clean")}
    x = torch.load(inputs)
    with torch.no_grad():
        torch.save({k: m.eval()(x) for k, m in models.items()}, dest)
""")


def _logits(models: dict[str, nn.Module], x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: m.eval()(x) for k, m in models.items()}


def test_trained_models_reload_bit_identically_in_a_fresh_process(tmp_path) -> None:
    out = tmp_path / "out"
    study = StudyContext(study_config_from_dict(TINY), out, progress=False).models
    models = {"backbone_full": study.backbone("full"), "backbone_early": study.backbone("early"),
              "block_clean": study.fixed_block("clean")}
    x = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    ref = _logits(models, x)

    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(TINY), str(out), str(tmp_path / "x.pt"),
                           str(tmp_path / "child.pt")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "child.pt")
    for name in MODELS:
        assert torch.equal(got[name], ref[name]), f"{name}: reloaded logits differ"
    assert not torch.equal(ref["backbone_full"], ref["backbone_early"])  # two different trained models

    # what a checkpoint holds: digital tensors only, plus the config that produced them (readable without
    # unpickling code: weights_only=True)
    for name in MODELS:
        file = name if name == "backbone_full" else f"{name}-1ep"  # early models: one file per early budget
        blob = read_state_dict(out / "checkpoints" / f"{file}.pt")
        assert set(blob) >= {"fingerprint", "key", "state_dict", "meta"}
        # keyed by the config's non-default values (lenet3 is the default model name; width 0.5 is not)
        assert blob["key"]["model"] == {"width": TINY["model"]["width"]} and blob["key"]["seed"] == TINY["seed"]
        assert all(torch.is_tensor(v) for v in blob["state_dict"].values())
        assert not any("analog" in k for k in blob["state_dict"])


def test_state_dict_of_another_architecture_is_refused_with_the_keys_that_differ(tmp_path) -> None:
    wide = get_model("lenet3", num_classes=10, in_channels=1, width=1.0, input_size=8)
    narrow = get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8)
    with pytest.raises(ConfigError, match=r"ckpt\.pt does not match .* shape mismatch: .*weight \(\d+, .*vs model"):
        load_state_checked(narrow, wide.state_dict(), "ckpt.pt")
    renamed = {f"backbone.{k}": v for k, v in narrow.state_dict().items()}
    with pytest.raises(ConfigError, match=r"missing in file: .*not in the model: backbone\."):
        load_state_checked(narrow, renamed, "ckpt.pt")
    before = [p.clone() for p in narrow.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, narrow.parameters()))  # nothing partially loaded


def test_non_finite_or_corrupt_checkpoints_are_refused(tmp_path) -> None:
    model = get_model("lenet3", num_classes=10, in_channels=1, width=0.5, input_size=8)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")
    with pytest.raises(ConfigError, match=f"NaN/inf values in {first}"):
        load_state_checked(model, state, "ckpt.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x80\x02not a torch file")
    with pytest.raises(ConfigError, match="cannot read .*junk.pt as a torch checkpoint .*delete it"):
        read_state_dict(junk)
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    good.write_bytes(good.read_bytes()[:200])  # truncated, as after a disk failure
    with pytest.raises(ConfigError, match="cannot read"):
        read_state_dict(good)


def test_study_refuses_a_tampered_checkpoint_with_the_keys_that_differ(tmp_path) -> None:
    out = tmp_path / "out"
    cfg = study_config_from_dict(TINY | {"methods": ["full_noise_injection"]})
    StudyContext(cfg, out, progress=False).models.backbone("full")
    path = out / "checkpoints" / "backbone_full.pt"
    blob = torch.load(path, weights_only=True)
    name = next(iter(blob["state_dict"]))
    blob["state_dict"][name] = torch.zeros(3, 3)  # same fingerprint, wrong architecture
    torch.save(blob, path)
    fresh = StudyContext(cfg, out, progress=False).models
    with pytest.raises(ConfigError, match=f"does not match .*shape mismatch: {name}"):
        fresh.backbone("full")
    blob["key"]["seed"] = 99  # a checkpoint of another configuration is refused, never silently re-trained over
    blob["fingerprint"] = "0" * 16
    torch.save(blob, path)
    with pytest.raises(ConfigError, match="trained for another configuration"):
        StudyContext(cfg, out, progress=False).models.backbone("full")
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="cannot read .*backbone_full.pt"):
        StudyContext(cfg, out, progress=False).models.backbone("full")
