"""load_torchvision from a local state-dict file, then TSB + analog conversion + programming."""
from __future__ import annotations

import pytest
import torch
import torchvision

from tsb_aihw.analog import to_analog, weight_report
from tsb_aihw.devices import load_preset
from tsb_aihw.errors import ConfigError
from tsb_aihw.models import insert_tsb, load_torchvision


pytestmark = pytest.mark.usefixtures("fast_cpu")  # no autograd, one thread (see conftest)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pt"
    torch.save(net.state_dict(), path)
    return net, path


def test_load_insert_convert_program_run(tmp_path):
    # squeezenet1_1: convs without BN, so the sites hook the convs themselves, which AIHWKit replaces
    torch.manual_seed(0)
    net = torchvision.models.squeezenet1_1(weights=None, num_classes=10).eval()
    path = tmp_path / "squeezenet.pt"
    torch.save(net.state_dict(), path)
    model = load_torchvision("squeezenet1_1", path, num_classes=10)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = net(x)
        assert torch.equal(model(x), ref)
        insert_tsb(model, input_shape=(3, 32, 32))
        targets = [s.target for s in model.tsb_sites.values()]
        assert model.tsb_config["k"] == 16 and "classifier.1" not in targets  # no site on the logits conv
        assert torch.equal(model(x), ref)
    analog = to_analog(model, load_preset("ideal"))
    calls = []
    analog.tsb.conv.register_forward_hook(lambda m, i, o: calls.append(1))
    analog.program_analog_weights()
    with torch.no_grad():
        torch.testing.assert_close(analog(x), ref, rtol=1e-4, atol=1e-4)  # ideal device: exact weights
    assert len(calls) == len(analog.tsb_sites) == 25  # every site re-hooked on its AnalogConv2d
    assert weight_report(analog).verified_weights == 16 * 16


def test_num_classes_comes_from_the_checkpoint(resnet_file):
    net, path = resnet_file
    model = load_torchvision("resnet18", path)
    assert model.fc.out_features == 10 and not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values()))


def test_wrapped_and_dataparallel_checkpoints(tmp_path, resnet_file):
    net, _ = resnet_file
    path = tmp_path / "wrapped.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    model = load_torchvision("resnet18", path, num_classes=10)
    assert torch.equal(model.fc.weight, net.fc.weight)


def test_clear_errors(tmp_path, resnet_file):
    _, path = resnet_file
    with pytest.raises(ConfigError, match="does not exist"):
        load_torchvision("resnet18", tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="unknown torchvision.*resnet18"):
        load_torchvision("resnet81", path)
    with pytest.raises(ConfigError, match=r"resnet34.*missing in file: layer1.2.conv1.weight.*\(96 in all\)"):
        load_torchvision("resnet34", path)
    with pytest.raises(ConfigError, match=r"shape mismatch: fc.weight \(10, 512\) vs model \(5, 512\)"):
        load_torchvision("resnet18", path, num_classes=5)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        load_torchvision("resnet18", junk)
