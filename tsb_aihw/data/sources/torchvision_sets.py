"""MNIST and CIFAR-10 through torchvision's own dataset classes (file layout, MD5 checks, download).

Files live under ``root`` (default ``<cache>/torchvision``) in torchvision's layout, so an existing
torchvision data directory can be reused (config key ``data.root``, ``root=`` in Python). Nothing is
downloaded unless asked (``data.download: true``, ``download=True``). Messages name the config keys, since no
command has a ``--download`` or ``--data-root`` flag.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from tsb_aihw.data.cache import cache_root
from tsb_aihw.data.sources.base import Pool, RootArg
from tsb_aihw.errors import DataError

MNIST_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: how a user asks for a download / another data directory: config keys (no command has flags for them)
DOWNLOAD_KEYS = "data.download: true in the config (download=True in Python)"
ROOT_KEYS = "data.root in the config (root= in Python)"
CIFAR10_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta")


def torchvision_root(root: RootArg) -> Path:
    """``root`` itself when given (a torchvision data dir), else ``<cache>/torchvision``."""
    return Path(root).expanduser() if root is not None else cache_root() / "torchvision"


def _expected(name: str, root: Path) -> tuple[Path, tuple[str, ...]]:
    if name == "MNIST":
        return root / "MNIST" / "raw", MNIST_RAW_FILES
    return root / "cifar-10-batches-py", CIFAR10_FILES


def _missing_message(name: str, root: Path) -> str:
    folder, files = _expected(name, root)
    missing = [f for f in files if not (folder / f).is_file()]
    if not missing:
        return (
            f"{name} files in {folder} are present but unreadable or failed torchvision's MD5 check "
            f"(corrupt, truncated or not the official files); delete them and set {DOWNLOAD_KEYS}, or point "
            f"{ROOT_KEYS} at a good copy"
        )
    msg = f"{name} not found: looked for {', '.join(missing)} in {folder}. "
    gz = [f for f in missing if (folder / f"{f}.gz").is_file()]
    if gz:
        msg += (
            f"Found {', '.join(g + '.gz' for g in gz)} there but not the unpacked files: set {DOWNLOAD_KEYS} "
            "and torchvision checks and unpacks them without using the network. "
        )
    return msg + (
        f"Set {DOWNLOAD_KEYS} to fetch it with torchvision, or point {ROOT_KEYS} at a directory holding a "
        "torchvision copy"
        + (" (MNIST/raw/...)" if name == "MNIST" else " (cifar-10-batches-py/...)")
    )


def _offline_message(name: str, root: Path, exc: BaseException) -> str:
    folder, files = _expected(name, root)
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 240:
        reason = reason[:237] + "..."
    if name == "MNIST":
        how = (
            f"copy the four MNIST files into {folder}, either unpacked ({', '.join(files)}) and run again "
            f"without download, or as the official .gz files and run again with {DOWNLOAD_KEYS} (torchvision "
            "checks their MD5 and unpacks them without using the network)"
        )
    else:
        how = (
            f"download cifar-10-python.tar.gz elsewhere and unpack it so that {folder} holds "
            f"{', '.join(files)}, then run again without download"
        )
    return (
        f"could not download {name} into {root} ({reason}): this machine looks offline or the mirror is "
        f"unreachable. Supply the files by hand: {how}. Or point {ROOT_KEYS} at an existing copy"
    )


def _open(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    cls = getattr(tvd, name)  # looked up at call time (torchvision's class, its checks and its download)
    if download:
        try:
            return cls(str(root), train=train, download=True)
        except (OSError, RuntimeError) as exc:  # urllib's URLError is an OSError
            raise DataError(_offline_message(name, root, exc)) from exc
    try:
        return cls(str(root), train=train, download=False)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(_missing_message(name, root)) from exc


def load_mnist(part: str, root: RootArg, download: bool, size: tuple[int, int]) -> Pool:
    """Official MNIST ``part`` ("train": 60,000, "test": 10,000) as 1x28x28 uint8."""
    tv_root = torchvision_root(root)
    ds = _open("MNIST", tv_root, part == "train", download)
    images = ds.data.to(torch.uint8).unsqueeze(1).contiguous()
    targets = torch.as_tensor(ds.targets, dtype=torch.int64)
    return Pool(images, targets, tuple(ds.classes), f"the {len(targets):,}-image official MNIST {part} split")


def load_cifar10(part: str, root: RootArg, download: bool, size: tuple[int, int]) -> Pool:
    """Official CIFAR-10 ``part`` ("train": 50,000, "test": 10,000) as 3x32x32 uint8."""
    tv_root = torchvision_root(root)
    ds = _open("CIFAR10", tv_root, part == "train", download)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW
    targets = torch.as_tensor(ds.targets, dtype=torch.int64)
    desc = f"the {len(targets):,}-image official CIFAR-10 {part} split"
    return Pool(images, targets, tuple(ds.classes), desc)
