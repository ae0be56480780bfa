"""mnist / cifar10 through torchvision's own classes, reading small files in the real on-disk formats.

MNIST: torchvision 0.25 reads the unpacked ``MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` files
and checks only that they exist (MD5s apply to the .gz downloads), so the files written here pass as is.
CIFAR-10: torchvision checks each ``cifar-10-batches-py`` file against the MD5 of the official release.
Small test batches cannot match those, so the tests set the class's expected MD5s (its ``train_list``,
``test_list`` and ``meta`` attributes, as subclasses like CIFAR100 do) to the MD5s of the files written;
the real check still runs, and a file that does not match still fails (tested below).
"""
from __future__ import annotations

import pickle
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from torchvision.datasets.utils import calculate_md5

from tsb_aihw.data import get_dataset
from tsb_aihw.data.transforms import CIFAR10_NORM
from tsb_aihw.errors import DataError

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------------------------------------- MNIST files


def _write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: magic (0x08 = ubyte, then the number of dims), big-endian int32 dims, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root: Path, n_train: int = 100, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        out[f"{prefix}_images"], out[f"{prefix}_labels"] = images, labels
    return out


@pytest.fixture
def mnist_root(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "tv"
    return root, _write_mnist(root)


def test_mnist_official_test_and_seeded_val_holdout(mnist_root):
    root, raw = mnist_root
    ds = {s: get_dataset("mnist", s, root=root, image_size=28) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in ds.items()} == {"train": 90, "val": 10, "test": 20}
    assert not set(ds["train"].indices) & set(ds["val"].indices)
    assert sorted(np.concatenate([ds["train"].indices, ds["val"].indices])) == list(range(100))
    assert np.bincount(ds["val"].targets.numpy()).tolist() == [1] * 10  # stratified
    np.testing.assert_array_equal(ds["test"].indices, np.arange(20))
    for split, d in ds.items():
        prefix = "t10k" if split == "test" else "train"
        expected = torch.from_numpy(raw[f"{prefix}_images"][d.indices] / 255.0).float().unsqueeze(1) * 2 - 1
        torch.testing.assert_close(d.images, expected)
        np.testing.assert_array_equal(d.targets.numpy(), raw[f"{prefix}_labels"][d.indices])
        assert d.info.num_classes == 10 and d.info.classes[3] == "3 - three" and not d.info.augment
    assert "official MNIST test split" in ds["test"].info.split_note
    assert "10%" in ds["val"].info.split_note and "seed 0" in ds["val"].info.split_note
    again = get_dataset("mnist", "val", root=root, seed=0)
    np.testing.assert_array_equal(again.indices, ds["val"].indices)
    assert again.images.shape[1:] == (1, 32, 32)  # default: resized to 32x32 as in the TSB authors' code
    assert not np.array_equal(get_dataset("mnist", "val", root=root, seed=1).indices, ds["val"].indices)


def test_mnist_missing_files_say_where_and_how(tmp_path):
    with pytest.raises(DataError) as err:
        get_dataset("mnist", "train", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte" in msg
    assert "download=True" in msg and "data.download: true" in msg and "data.root" in msg
    assert "--download" not in msg and "--data-root" not in msg  # no command has these flags


def test_mnist_packed_gz_files_are_pointed_out(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz .*not the unpacked files"):
        get_dataset("mnist", "test", root=tmp_path)


def _offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(request, *args, **kwargs):
        calls.append(getattr(request, "full_url", str(request)))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution (test: offline)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_mnist_download_offline_is_a_clear_error(tmp_path, monkeypatch):
    calls = _offline(monkeypatch)
    with pytest.raises(DataError) as err:
        get_dataset("mnist", "train", root=tmp_path, download=True)
    msg = str(err.value)
    assert "offline" in msg and "by hand" in msg and str(tmp_path / "MNIST" / "raw") in msg
    assert calls and all("mnist" in c for c in calls)  # torchvision's real download path was tried


# ---------------------------------------------------------------------------------------------- CIFAR files


def _write_cifar(root: Path, per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """``cifar-10-batches-py``: pickled dicts, uint8 ``data`` rows (1024 R, 1024 G, 1024 B) and ``labels``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = []
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = [int(v) for v in (np.arange(n) + k) % 10]
        entry = {"batch_label": name, "labels": labels, "data": images.reshape(n, 3072),
                 "filenames": [f"img_{k}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        if name != "test_batch":
            train.append((images, labels))
        else:
            test = (images, np.array(labels))
    meta = {"num_cases_per_batch": per_batch, "label_names": CIFAR_CLASSES, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {
        "train_images": np.concatenate([t[0] for t in train]),
        "train_labels": np.concatenate([t[1] for t in train]),
        "test_images": test[0],
        "test_labels": test[1],
    }


def _expect_md5_of(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point torchvision's expected CIFAR-10 MD5s at the files written (the check itself still runs)."""
    md5 = lambda name: calculate_md5(folder / name)  # noqa: E731
    train_list = [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)]
    monkeypatch.setattr(tvd.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5("batches.meta")})


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    root = tmp_path / "tv"
    raw = _write_cifar(root)
    _expect_md5_of(root / "cifar-10-batches-py", monkeypatch)
    return root, raw


def test_cifar10_reads_batches_with_official_test_and_val_holdout(cifar_root):
    root, raw = cifar_root
    mean = torch.tensor(CIFAR10_NORM[0]).view(3, 1, 1)
    std = torch.tensor(CIFAR10_NORM[1]).view(3, 1, 1)
    ds = {s: get_dataset("cifar10", s, root=root, augment=False) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in ds.items()} == {"train": 90, "val": 10, "test": 20}
    assert sorted(np.concatenate([ds["train"].indices, ds["val"].indices])) == list(range(100))
    for split, d in ds.items():
        prefix = "test" if split == "test" else "train"
        expected = (torch.from_numpy(raw[f"{prefix}_images"][d.indices]).float() / 255 - mean) / std
        torch.testing.assert_close(d.images, expected)  # channel order and layout preserved
        np.testing.assert_array_equal(d.targets.numpy(), raw[f"{prefix}_labels"][d.indices])
        assert d.info.classes == tuple(CIFAR_CLASSES)
        assert d.info.in_channels == 3 and d.info.image_size == (32, 32)
    assert "official CIFAR-10 test split" in ds["test"].info.split_note


def test_cifar10_augments_train_only(cifar_root):
    root, _ = cifar_root
    train = get_dataset("cifar10", "train", root=root)
    val = get_dataset("cifar10", "val", root=root, augment=True)  # never on val/test, even when asked
    assert train.info.augment and train.images.dtype == torch.uint8 and train.transform is not None
    assert not val.info.augment and val.transform is None
    torch.manual_seed(0)
    draws = torch.stack([train[0][0] for _ in range(8)])
    plain, labels = train.as_tensors()  # normalised, un-augmented view equals the val-style pipeline
    no_aug = get_dataset("cifar10", "train", root=root, augment=False)
    assert torch.equal(plain, no_aug.images) and torch.equal(labels, no_aug.targets)
    assert draws.shape == (8, 3, 32, 32) and draws.dtype == torch.float32
    assert (draws != draws[0]).any()  # random crops/flips
    torch.manual_seed(0)
    assert torch.equal(torch.stack([train[0][0] for _ in range(8)]), draws)  # reproducible from the seed
    assert torch.equal(val[0][0], val[0][0])


def test_cifar10_augmentation_is_a_padded_crop_and_flip(cifar_root):
    """Every augmented image equals a 32x32 window of the zero-padded raw image, possibly mirrored."""
    root, raw = cifar_root
    train = get_dataset("cifar10", "train", root=root)
    mean = torch.tensor(CIFAR10_NORM[0]).view(3, 1, 1)
    std = torch.tensor(CIFAR10_NORM[1]).view(3, 1, 1)
    padded = torch.nn.functional.pad(train.images[5].float(), (4, 4, 4, 4))
    candidates = [w for i in range(9) for j in range(9) for w in (padded[:, i:i + 32, j:j + 32],)]
    candidates += [c.flip(-1) for c in candidates]
    torch.manual_seed(1)
    for _ in range(10):
        got = train[5][0] * std + mean  # undo normalisation -> pixels / 255
        assert min(float((got * 255 - c).abs().max()) for c in candidates) < 1e-3


def test_cifar10_checksum_mismatch_is_reported_as_corrupt(tmp_path, monkeypatch):
    root = tmp_path / "tv"
    _write_cifar(root)
    folder = root / "cifar-10-batches-py"
    _expect_md5_of(folder, monkeypatch)
    with open(folder / "data_batch_3", "ab") as fh:  # damage one file after its MD5 was recorded
        fh.write(b"\0")
    with pytest.raises(DataError, match="MD5 check") as err:
        get_dataset("cifar10", "train", root=root)
    assert "download=True" in str(err.value)


def test_cifar10_real_md5_check_rejects_unofficial_files(tmp_path):
    root = tmp_path / "tv"
    _write_cifar(root)  # torchvision's official MD5s: these files cannot pass
    with pytest.raises(DataError, match="failed torchvision's MD5 check"):
        get_dataset("cifar10", "test", root=root)


def test_cifar10_missing_and_offline(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        get_dataset("cifar10", "test", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_1" in msg and "data.download: true" in msg
    calls = _offline(monkeypatch)
    with pytest.raises(DataError) as err:
        get_dataset("cifar10", "test", root=tmp_path, download=True)
    assert "offline" in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
    assert calls and "cifar-10-python.tar.gz" in calls[0]


def test_default_torchvision_root_is_under_the_cache(data_cache):
    with pytest.raises(DataError) as err:
        get_dataset("mnist", "test")
    assert str(data_cache / "torchvision" / "MNIST" / "raw") in str(err.value)


def test_mnist_official_gz_files_unpack_offline_with_download(tmp_path, monkeypatch):
    """What the offline message promises: .gz files + download=True need no network (MD5s set as above)."""
    import gzip

    src = tmp_path / "src"
    raw = _write_mnist(src)
    dest = tmp_path / "tv" / "MNIST" / "raw"
    dest.mkdir(parents=True)
    resources = []
    for f in sorted((src / "MNIST" / "raw").iterdir()):
        gz = dest / f"{f.name}.gz"
        gz.write_bytes(gzip.compress(f.read_bytes()))
        resources.append((gz.name, calculate_md5(gz)))
    monkeypatch.setattr(tvd.MNIST, "resources", resources)
    calls = _offline(monkeypatch)
    with pytest.raises(DataError, match="not the unpacked files"):
        get_dataset("mnist", "test", root=tmp_path / "tv")
    d = get_dataset("mnist", "test", root=tmp_path / "tv", download=True, image_size=28)
    assert calls == [] and len(d) == 20
    expected = torch.from_numpy(raw["t10k_images"] / 255.0).float().unsqueeze(1) * 2 - 1
    torch.testing.assert_close(d.images, expected)
