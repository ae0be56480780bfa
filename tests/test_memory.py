"""keep_freed_memory: freed blocks are reused instead of being faulted in again (each mode in a fresh process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = """
import json, resource, warnings
warnings.filterwarnings("ignore")
import torch
from tsb_aihw.utils.memory import keep_freed_memory
state = keep_freed_memory()
assert keep_freed_memory() == state  # once per process
from tsb_aihw.analog import to_analog
from tsb_aihw.analog.chip import Chip
from tsb_aihw.evaluation.accuracy import chip_accuracy
from tsb_aihw.devices import load_preset
from tsb_aihw.models import get_model
torch.set_num_threads(1)
preset = load_preset("nvcim-gaussian")
model = get_model("vgg8", num_classes=10, in_channels=3, width=0.125, input_size=32).eval()
chip = Chip(to_analog(model, preset, verify="none").eval(), preset, 0, 0)
chip.program()
batches = [(torch.randn(256, 3, 32, 32), torch.zeros(256, dtype=torch.long))] * 4
chip_accuracy(chip, batches, 0.0)  # the first pass maps the memory either way
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
chip_accuracy(chip, batches, 0.0)
print(json.dumps({"state": state, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0}))
"""


def _run(mode: str) -> dict:
    env = dict(os.environ, TSB_AIHW_MALLOC=mode)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt exists on Linux only")
def test_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    """A second chip evaluation: with glibc's default every large batch buffer is a fresh mapping the kernel
    faults in again (tens of thousands of pages); kept, the first pass's memory is reused."""
    default, kept = _run("default"), _run("keep")
    assert default["state"] == "default" and kept["state"] == "kept"
    assert default["faults"] > 10_000
    assert kept["faults"] < default["faults"] // 5


def test_a_bad_setting_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import tsb_aihw.utils.memory as memory
    from tsb_aihw.errors import ConfigError

    monkeypatch.setattr(memory, "_state", None)
    monkeypatch.setenv("TSB_AIHW_MALLOC", "turbo")
    with pytest.raises(ConfigError, match="TSB_AIHW_MALLOC='turbo'"):
        memory.keep_freed_memory()
