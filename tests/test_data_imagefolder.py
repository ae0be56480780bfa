"""imagefolder:<path>: folders, .tar.gz archives, atomic extraction, decoded cache, errors, shared archive."""
from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tsb_aihw.data import get_dataset, make_loader
from tsb_aihw.data.sources import imagefolder
from tsb_aihw.data.transforms import CIFAR10_NORM
from tsb_aihw.errors import DataError

CLASSES = ("ant", "bee", "cat")
MEAN = torch.tensor(CIFAR10_NORM[0]).view(1, 3, 1, 1)
STD = torch.tensor(CIFAR10_NORM[1]).view(1, 3, 1, 1)


def write_tree(
    root: Path, per_class: int = 10, hw: tuple[int, int] = (32, 32), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """PNG tree ``root/<class>/<NNN>.png`` (lossless, so pixels can be compared exactly).

    Returns images ``[N, 3, H, W]`` uint8 and labels in ImageFolder order (classes, then file names, sorted).
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{i:03d}.png")
            images.append(arr.transpose(2, 0, 1))
            labels.append(c)
    return np.stack(images), np.array(labels)


def make_targz(src: Path, dest: Path, arcname: str) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=arcname)
    return dest


def normalised(raw: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(raw).float() / 255 - MEAN) / STD


def entry_dir(cache: Path) -> Path:
    (entry,) = (cache / "imagefolder").iterdir()
    return entry


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Each test sees only its own on-disk cache, never pools memoised by an earlier test."""
    imagefolder.clear_memo()
    yield
    imagefolder.clear_memo()


# ---------------------------------------------------------------------------------------------- folders


def test_folder_tree_splits_classes_and_exact_pixels(tmp_path, data_cache):
    tree = tmp_path / "tree"
    raw, labels = write_tree(tree)
    (tree / ".ipynb_checkpoints").mkdir()  # hidden folder: not a class
    Image.fromarray(raw[0].transpose(1, 2, 0)).save(tree / ".ipynb_checkpoints" / "x.png")
    (tree / "ant" / "._000.png").write_bytes(b"\0\5\26\7")  # macOS AppleDouble debris: not an image
    name = f"imagefolder:{tree}"
    ds = {s: get_dataset(name, s, augment=False) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in ds.items()} == {"train": 21, "val": 3, "test": 6}
    assert sorted(np.concatenate([d.indices for d in ds.values()])) == list(range(30))
    for d in ds.values():
        assert d.info.classes == CLASSES and d.info.num_classes == 3 and d.info.in_channels == 3
        assert d.info.image_size == (32, 32) and d.info.name == name
        torch.testing.assert_close(d.images, normalised(raw[d.indices]))
        np.testing.assert_array_equal(d.targets.numpy(), labels[d.indices])
    assert "70/10/20" in ds["test"].info.split_note and "the 30 images of tree" in ds["test"].info.split_note
    assert (entry_dir(data_cache) / "decoded-32x32.pt").is_file()
    # Default: the train split of an RGB source is augmented and keeps raw pixels; val is not.
    train = get_dataset(name, "train")
    assert train.info.augment and torch.equal(train.images, torch.from_numpy(raw[train.indices]))
    assert not get_dataset(name, "val").info.augment


def test_other_image_sizes_are_resized_at_decode(tmp_path, data_cache):
    tree = tmp_path / "odd"
    write_tree(tree, hw=(20, 24))
    d = get_dataset(f"imagefolder:{tree}", "test")
    assert d.images.shape[1:] == (3, 32, 32)
    d16 = get_dataset(f"imagefolder:{tree}", "test", image_size=16)
    assert d16.images.shape[1:] == (3, 16, 16) and d16.info.image_size == (16, 16)
    assert {p.name for p in entry_dir(data_cache).iterdir()} == {"decoded-32x32.pt", "decoded-16x16.pt"}
    xs, ys = next(iter(make_loader(d16, batch_size=4)))
    assert xs.shape == (4, 3, 16, 16) and ys.dtype == torch.int64


# ---------------------------------------------------------------------------------------------- archives


def test_targz_finds_class_root_extracts_once_and_reuses_decoded_cache(tmp_path, data_cache):
    tree = tmp_path / "pack" / "data" / "train"
    raw, labels = write_tree(tree)
    archive = make_targz(tmp_path / "pack" / "data", tmp_path / "mini.tar.gz", arcname="data")
    name = f"imagefolder:{archive}"
    val = get_dataset(name, "val", augment=False)
    from_folder = get_dataset(f"imagefolder:{tree}", "val", augment=False)
    np.testing.assert_array_equal(val.indices, from_folder.indices)
    torch.testing.assert_close(val.images, normalised(raw[val.indices]))
    assert val.info.classes == CLASSES and "mini.tar.gz" in val.info.split_note

    entry = next(p for p in (data_cache / "imagefolder").iterdir() if p.name.startswith("mini-"))
    assert {p.name for p in entry.iterdir()} == {"extracted", "decoded-32x32.pt"}  # no partial folders left
    assert (entry / "extracted" / "data" / "train" / "bee" / "003.png").is_file()

    # A later run loads the decoded tensor file: no extraction, no decoding.
    import shutil

    shutil.rmtree(entry / "extracted")
    imagefolder.clear_memo()
    again = get_dataset(name, "val", augment=False)
    assert torch.equal(again.images, val.images) and not (entry / "extracted").exists()

    # A changed archive is a new cache entry with the new content.
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tree / "ant" / "000.png")
    time.sleep(0.01)
    make_targz(tmp_path / "pack" / "data", archive, arcname="data")
    changed = {s: get_dataset(name, s, augment=False) for s in ("train", "val", "test")}
    assert len(list((data_cache / "imagefolder").glob("mini-*"))) == 2
    (d,) = [d for d in changed.values() if 0 in d.indices]  # pool image 0 is ant/000.png
    pos = int(np.flatnonzero(d.indices == 0)[0])
    assert torch.equal(d.images[pos], normalised(np.zeros((1, 3, 32, 32), np.uint8))[0])


def test_interrupted_extraction_is_never_taken_for_complete(tmp_path, data_cache, monkeypatch):
    write_tree(tmp_path / "t" / "train")
    archive = make_targz(tmp_path / "t", tmp_path / "cut.tgz", arcname="t")
    real_extractall = tarfile.TarFile.extractall

    def extract_some_then_die(self, path=".", members=None, **kw):
        real_extractall(self, path, members=self.getmembers()[:7], **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile.TarFile, "extractall", extract_some_then_die)
    with pytest.raises(KeyboardInterrupt):
        get_dataset(f"imagefolder:{archive}", "train")
    assert list(entry_dir(data_cache).iterdir()) == []  # neither "extracted" nor a partial folder
    monkeypatch.setattr(tarfile.TarFile, "extractall", real_extractall)
    assert len(get_dataset(f"imagefolder:{archive}", "train")) == 21


def test_unreadable_decoded_cache_is_rebuilt(tmp_path, data_cache):
    write_tree(tmp_path / "tree")
    name = f"imagefolder:{tmp_path / 'tree'}"
    first = get_dataset(name, "test")
    cache_file = entry_dir(data_cache) / "decoded-32x32.pt"
    cache_file.write_bytes(cache_file.read_bytes()[:100])
    imagefolder.clear_memo()
    with pytest.warns(UserWarning, match="ignoring unreadable decoded-image cache"):
        again = get_dataset(name, "test")
    assert torch.equal(first.images, again.images)
    imagefolder.clear_memo()
    assert torch.equal(get_dataset(name, "test").images, first.images)  # rewritten: no warning needed now


# ---------------------------------------------------------------------------------------------- errors


def _err(name: str) -> str:
    with pytest.raises(DataError) as err:
        get_dataset(name, "train")
    return str(err.value)


def test_path_errors(tmp_path, data_cache):
    assert "does not exist" in _err(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "notes.txt").write_text("hi")
    assert "neither a folder nor a .tar.gz" in _err(f"imagefolder:{tmp_path / 'notes.txt'}")
    (tmp_path / "fake.tar.gz").write_text("this is text, not gzip")
    assert "not gzip-compressed" in _err(f"imagefolder:{tmp_path / 'fake.tar.gz'}")
    (tmp_path / "notar.tar.gz").write_bytes(gzip.compress(b"hello " * 200))
    assert "corrupt or truncated" in _err(f"imagefolder:{tmp_path / 'notar.tar.gz'}")


def test_truncated_archive_is_reported_and_leaves_nothing(tmp_path, data_cache):
    write_tree(tmp_path / "t", per_class=20)
    full = make_targz(tmp_path / "t", tmp_path / "full.tar.gz", arcname="t").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(full[: len(full) // 2])
    msg = _err(f"imagefolder:{tmp_path / 'cut.tar.gz'}")
    assert "corrupt or truncated" in msg and "sha256" in msg
    assert list(entry_dir(data_cache).iterdir()) == []


def test_tree_shape_errors(tmp_path, data_cache):
    (tmp_path / "empty").mkdir()
    assert "no usable image tree" in _err(f"imagefolder:{tmp_path / 'empty'}")
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "a" / "readme.txt").write_text("x")
    assert "no class folders with images" in _err(f"imagefolder:{tmp_path / 'noimg'}")
    (tmp_path / "loose").mkdir()
    for i in range(12):
        Image.new("RGB", (8, 8)).save(tmp_path / "loose" / f"{i}.png")
    assert "images lie directly in it" in _err(f"imagefolder:{tmp_path / 'loose'}")
    write_tree(tmp_path / "splits" / "train")
    write_tree(tmp_path / "splits" / "test")
    assert "split folders (test, train)" in _err(f"imagefolder:{tmp_path / 'splits'}")
    write_tree(tmp_path / "few", per_class=1)
    assert "too few" in _err(f"imagefolder:{tmp_path / 'few'}")


def test_undecodable_image_is_named(tmp_path, data_cache):
    write_tree(tmp_path / "bad")
    (tmp_path / "bad" / "cat" / "999.jpg").write_bytes(b"not a jpeg at all")
    msg = _err(f"imagefolder:{tmp_path / 'bad'}")
    assert "cannot decode image" in msg and "999.jpg" in msg


def test_unsafe_archive_member_is_refused(tmp_path, data_cache):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.png")
        data = io.BytesIO(b"x")
        info.size = 1
        tar.addfile(info, data)
    assert "unsafe member" in _err(f"imagefolder:{archive}")
    assert not (data_cache / "imagefolder" / "escape.png").exists()


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    write_tree(tmp_path / "tree")
    (tmp_path / "file").write_text("a file, not a directory")
    monkeypatch.setenv("TSB_AIHW_CACHE", str(tmp_path / "file" / "cache"))
    msg = _err(f"imagefolder:{tmp_path / 'tree'}")
    assert "cache directory" in msg and "TSB_AIHW_CACHE" in msg


# ---------------------------------------------------------------------------------------------- shared CIFAR


@pytest.mark.slow
def test_shared_cifar10_jpeg_archive(cifar_jpeg_decoded, record_property):
    """The real 50,000-JPEG archive: first load (extract + decode, in the session fixture), cached load,
    sizes, classes, and pixels against PIL's decoding of the archive members."""
    archive, name, root = (cifar_jpeg_decoded[k] for k in ("archive", "name", "root"))
    first = cifar_jpeg_decoded["first_load_s"]
    imagefolder.clear_memo()
    t0 = time.perf_counter()
    val = get_dataset(name, "val", root=root)
    cached = time.perf_counter() - t0
    train, test = get_dataset(name, "train", root=root), get_dataset(name, "test", root=root)
    record_property("first_load_s", round(first, 2))
    record_property("cached_load_s", round(cached, 2))
    print(f"shared CIFAR-10 archive: first load {first:.1f} s, cached load {cached:.2f} s")
    assert cached < 0.5 * first

    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert (len(train), len(val), len(test)) == (35_000, 5_000, 10_000)
    assert len(set(train.indices) | set(val.indices) | set(test.indices)) == 50_000
    for d in (train, val, test):
        assert d.info.classes == classes and d.info.in_channels == 3 and d.info.image_size == (32, 32)
    assert np.bincount(val.targets.numpy()).tolist() == [500] * 10
    assert train.info.augment and not val.info.augment and not test.info.augment
    assert "cifar10-train-jpeg.tar.gz" in val.info.split_note and "seed 0" in val.info.split_note

    # Items equal PIL's decoding of the JPEG members (ImageFolder order: class, then NNNN.jpg).
    picks = [0, 1234, 4999]
    pool_ids = {k: int(val.indices[k]) for k in picks}
    wanted = {f"train/{classes[p // 5000]}/{p % 5000:04d}.jpg": k for k, p in pool_ids.items()}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                k = wanted.pop(member.name)
                arr = np.array(Image.open(tar.extractfile(member)).convert("RGB")).transpose(2, 0, 1)
                torch.testing.assert_close(val[k][0], normalised(arr[None])[0])
                assert val[k][1] == int(val.indices[k]) // 5000
            if not wanted:
                break
    assert not wanted


# ---------------------------------------------------------------------------------------------- bad trees (issue 16)


def test_16_bit_png_and_float_tiff_keep_their_values(tmp_path):
    """16-bit grey was decoded as white and float grey as black (Pillow's convert("RGB") clips)."""
    rng = np.random.default_rng(1)
    (tmp_path / "t" / "deep").mkdir(parents=True)
    (tmp_path / "t" / "float").mkdir()
    g16 = rng.integers(0, 65536, size=(32, 32), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "t" / "deep" / "0.png")
    f32 = rng.random((32, 32), dtype=np.float32)
    Image.fromarray(f32).save(tmp_path / "t" / "float" / "0.tiff")
    images, targets, classes = imagefolder.decode_tree(tmp_path / "t", (32, 32))
    assert classes == ("deep", "float") and targets.tolist() == [0, 1]
    want16 = np.rint(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    wantf = np.rint(f32.astype(np.float64) * 255).astype(np.uint8)
    for c in range(3):
        assert np.array_equal(images[0, c].numpy(), want16)
        assert np.array_equal(images[1, c].numpy(), wantf)


def test_float_tiff_outside_unit_range_is_refused(tmp_path, data_cache):
    write_tree(tmp_path / "t", per_class=4)
    Image.fromarray(np.full((8, 8), 1000.0, dtype=np.float32)).save(tmp_path / "t" / "ant" / "hdr.tiff")
    msg = _err(f"imagefolder:{tmp_path / 't'}")
    assert "hdr.tiff" in msg and "only floats in [0, 1]" in msg and "\n" not in msg


def test_symlink_loop_in_a_class_folder_does_not_multiply_images(tmp_path, data_cache):
    """os.walk(followlinks=True) followed ant/loop -> . ~40 times: every ant image landed in train and test."""
    write_tree(tmp_path / "t", per_class=10)
    (tmp_path / "t" / "ant" / "loop").symlink_to(".", target_is_directory=True)
    (tmp_path / "t" / "bee" / "again").symlink_to("../bee", target_is_directory=True)
    images, targets, _ = imagefolder.decode_tree(tmp_path / "t", (32, 32))
    assert len(targets) == 30 and torch.bincount(targets).tolist() == [10, 10, 10]
    sizes = [len(get_dataset(f"imagefolder:{tmp_path / 't'}", s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 30


def test_one_file_under_two_classes_is_refused(tmp_path, data_cache):
    write_tree(tmp_path / "t", per_class=4)
    (tmp_path / "t" / "bee" / "ants").symlink_to("../ant", target_is_directory=True)
    msg = _err(f"imagefolder:{tmp_path / 't'}")
    assert "same file" in msg and "two labels" in msg


def test_single_class_folder_is_refused(tmp_path, data_cache):
    """One class: every prediction is right, the study reported 100%."""
    write_tree(tmp_path / "t", per_class=12)
    for name in ("bee", "cat"):
        for f in (tmp_path / "t" / name).iterdir():
            f.unlink()
        (tmp_path / "t" / name).rmdir()
    msg = _err(f"imagefolder:{tmp_path / 't'}")
    assert "single class folder (ant)" in msg and "at least 2" in msg


def test_empty_class_folder_is_refused(tmp_path, data_cache):
    write_tree(tmp_path / "t", per_class=4)
    (tmp_path / "t" / "dog").mkdir()
    assert "dog" in _err(f"imagefolder:{tmp_path / 't'}")


def test_dangling_symlink_is_one_line(tmp_path, data_cache):
    write_tree(tmp_path / "t", per_class=4)
    (tmp_path / "t" / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    msg = _err(f"imagefolder:{tmp_path / 't'}")
    assert "gone.png is a broken (dangling) symlink" in msg and "remove it" in msg


def test_fifo_named_like_an_image_is_refused_not_read(tmp_path, data_cache):
    """Opening a FIFO blocks until a writer comes: the loader hung forever."""
    import os
    import signal

    write_tree(tmp_path / "t", per_class=4)
    os.mkfifo(tmp_path / "t" / "bee" / "pipe.png")

    def hung(signum, frame):
        raise TimeoutError("the loader blocked on the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        msg = _err(f"imagefolder:{tmp_path / 't'}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert "pipe.png is named like an image but is not a regular file" in msg


def test_over_long_names_are_one_line(tmp_path, data_cache):
    msg = _err(f"imagefolder:{tmp_path / ('x' * 300)}")
    assert "too long for the file system" in msg
    archive = tmp_path / "long.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(f"t/ant/{'y' * 300}.png")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    msg = _err(f"imagefolder:{archive}")
    assert "name is too long for the file system" in msg and "free disk space" not in msg
