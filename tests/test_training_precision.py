"""Mixed precision as a recipe field: the resolver (with injected CPU flags, not this machine's), bf16 training
on CPU that keeps every parameter, buffer, optimizer state and the injected noise in fp32, and the resolved
precision recorded in results and checkpoints."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tsb_aihw.errors import ConfigError
from tsb_aihw.training import Checkpointing, TrainRecipe, train_block, train_noise_injection, weight_noise
from tsb_aihw.training.checkpointing import load_state
from tsb_aihw.utils import precision as prec

from helpers import digits, digits_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PLAIN = TrainRecipe(augment="none", label_smoothing=0.0, weight_decay=0.0, schedule="constant",
                    warmup_fraction=0.0, lr=0.05)
CPU = torch.device("cpu")


# -- the resolver --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags,expected", [
    ({"avx2", "fma"}, "fp32"),  # AMD EPYC of this project: no native bf16
    ({"avx2", "avx512f"}, "fp32"),  # AVX-512 without its bf16 extension
    ({"avx2", "avx512_bf16"}, "bf16"),
    ({"avx512_bf16", "amx_bf16", "amx_tile"}, "bf16"),
    (set(), "fp32"),
])
def test_auto_picks_bf16_only_with_native_cpu_support(flags, expected):
    assert prec.resolve_precision("auto", CPU, flags) == expected
    assert prec.resolve_precision("fp32", CPU, {"amx_bf16"}) == "fp32"  # explicit values are kept
    assert prec.resolve_precision("bf16", CPU, set()) == "bf16"


def test_auto_on_cuda_asks_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert prec.resolve_precision("auto", torch.device("cuda"), flags=set()) == expected


def test_cpu_flags_and_model_name_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
                    "flags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert prec.cpu_flags(info) == frozenset({"fpu", "avx2", "avx512_bf16", "amx_bf16"})
    assert prec.cpu_model_name(info) == "Intel(R) Xeon(R) Platinum 8481C"
    missing = tmp_path / "absent"
    assert prec.cpu_flags(missing) == frozenset() and prec.cpu_model_name(missing) == "unknown"


@pytest.mark.parametrize("value", ["fp16", "BF16", "", None, 16])
def test_bad_precision_is_one_config_error_line(value):
    with pytest.raises(ConfigError, match="precision .* is unknown; choose one of fp32, bf16, auto") as err:
        TrainRecipe(precision=value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown"):
        prec.resolve_precision(value, CPU)  # type: ignore[arg-type]


# -- training ---------------------------------------------------------------------------------------------


def conv_input_dtypes(model: nn.Module) -> list[torch.dtype]:
    """Record the dtype of every Conv2d output (bf16 under autocast) during training."""
    seen: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype) if _m.training else None)
    return seen


def test_bf16_trains_on_cpu_and_keeps_master_state_fp32(tmp_path):
    train, val, _ = digits(1200, 1500)
    results, models = {}, {}
    for p in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = digits_cnn(8, 8)
        dtypes = conv_input_dtypes(model)
        bn = model[1]
        running_before = bn.running_mean.clone()
        res = train_noise_injection(model, DataLoader(train, 100, shuffle=True), DataLoader(val, 300), noise_std=0.05,
                                    epochs=2, progress=False, recipe=dataclasses.replace(PLAIN, precision=p),
                                    checkpointing=Checkpointing(tmp_path / p))
        assert set(dtypes) == {torch.bfloat16 if p == "bf16" else torch.float32}
        assert res.precision == p and res.config.precision == p and res.to_dict()["precision"] == p
        assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
        assert not torch.equal(bn.running_mean, running_before)  # BN statistics moved, in fp32
        state = load_state(tmp_path / p / "resume.pt")
        assert state.run.precision == p  # the checkpoint's meta records the precision
        momenta = [s["momentum_buffer"] for s in state.optimizer["state"].values()]
        assert momenta and all(m.dtype == torch.float32 for m in momenta)
        results[p], models[p] = res, model
    assert results["bf16"].best_val_acc > 0.7  # learns (chance: 0.1)
    assert abs(results["bf16"].best_val_acc - results["fp32"].best_val_acc) < 0.1
    assert not torch.equal(models["bf16"][0].weight, models["fp32"][0].weight)  # bf16 really ran


def test_the_injected_noise_stays_fp32_under_autocast():
    lin = nn.Linear(16, 4)
    with weight_noise(lin, 0.1):
        lin.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            noisy = lin.weight
            out = lin(torch.randn(2, 16))
        assert noisy.dtype == torch.float32 and out.dtype == torch.bfloat16
        assert not torch.equal(noisy, lin.parametrizations.weight.original)


def test_auto_follows_the_cpu_flags(monkeypatch):
    train, _ = digits(1400)
    for flags, expected in (({"avx2"}, "fp32"), ({"avx2", "amx_bf16"}, "bf16")):
        monkeypatch.setattr(prec, "cpu_flags", lambda f=frozenset(flags): f)
        torch.manual_seed(0)
        res = train_noise_injection(digits_cnn(4), DataLoader(train, 700), noise_std=0.0, epochs=1, progress=False,
                                    recipe=dataclasses.replace(PLAIN, precision="auto"))
        assert res.precision == expected
        assert res.config.optim.recipe.precision == "auto"  # what was asked, next to what ran


def test_without_a_recipe_training_stays_fp32():
    train, _ = digits(1400)
    torch.manual_seed(0)
    res = train_noise_injection(digits_cnn(4), DataLoader(train, 700), noise_std=0.0, epochs=1, progress=False)
    assert res.precision == "fp32"


def test_block_training_runs_in_bf16_and_leaves_the_backbone_alone():
    from test_training_recipe import BlockNet

    train, _ = digits(1400)
    torch.manual_seed(0)
    model = BlockNet()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("tsb.")}
    res = train_block(model, DataLoader(train, 100), block_params="tsb", epochs=1, progress=False,
                      recipe=dataclasses.replace(PLAIN, lr=0.02, precision="bf16"))
    assert res.precision == "bf16" and res.config.precision == "bf16"
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert model.tsb.conv.weight.dtype == torch.float32 and float(model.tsb.conv.weight.detach().abs().sum()) > 0
