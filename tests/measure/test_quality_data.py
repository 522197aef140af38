"""Datasets behind one interface: shapes, dtypes, range, fixed splits; torchvision layouts without a download."""
import pickle

import numpy as np
import pytest
import torch

from bench.measure.quality import load_dataset
from bench.plan.quality_presets import DATASETS


def _check_splits(data, shape, train_n, heldout_n):
    assert data.shape == shape
    for x, y, n in ((data.train_x, data.train_y, train_n), (data.heldout_x, data.heldout_y, heldout_n)):
        assert x.shape == (n, *shape) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert x.min() >= -1 and x.max() <= 1
    assert data.train_x.min() == -1 and data.train_x.max() == 1  # the full range is used, not a sub-range


@pytest.mark.parametrize("name, shape, total", [("digits", (1, 8, 8), 1797), ("mnist5k", (1, 28, 28), 5000)])
def test_embedded_dataset_splits(name, shape, total):
    data = load_dataset(name)
    heldout_n = DATASETS[name].heldout_n
    _check_splits(data, shape, total - heldout_n, heldout_n)
    # disjoint: no held-out image is also a training image
    train = {bytes(x.numpy()) for x in data.train_x}
    assert not any(bytes(x.numpy()) in train for x in data.heldout_x)
    # stratified: every class in the held-out split, in the same proportion as in train (within one image)
    train_share = torch.bincount(data.train_y, minlength=10) / len(data.train_y)
    heldout_counts = torch.bincount(data.heldout_y, minlength=10)
    assert (heldout_counts - train_share * heldout_n).abs().max() <= 1


def test_embedded_split_is_fixed_by_its_seed():
    first, again, other = load_dataset("digits", split_seed=0), load_dataset("digits", split_seed=0), \
        load_dataset("digits", split_seed=1)
    assert torch.equal(first.heldout_x, again.heldout_x)
    assert not torch.equal(first.heldout_x, other.heldout_x)
    assert first.split != other.split  # the split name enters the classifier cache key


def test_digits_keep_their_17_grey_levels():
    levels = torch.unique(torch.cat([load_dataset("digits").train_x, load_dataset("digits").heldout_x]))
    assert torch.allclose(levels, torch.arange(17) / 16 * 2 - 1)


def test_unknown_dataset_and_missing_data_dir():
    with pytest.raises(ValueError, match="dataset='svhn' is invalid; valid: digits, mnist5k"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="data_dir=None is invalid for dataset='cifar10'"):
        load_dataset("cifar10")


def test_torchvision_dataset_missing_files_fails_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="fashion_mnist: .*download=True"):
        load_dataset("fashion_mnist", tmp_path / "empty")


def _write_idx(path, array):
    # IDX format as torchvision reads it: magic (0, 0, type 0x08 = uint8, ndim), big-endian sizes, data
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, array.ndim]))
        f.write(np.asarray(array.shape, dtype=">i4").tobytes())
        f.write(array.astype(np.uint8).tobytes())


def test_fashion_mnist_from_local_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (6, 28, 28))
    train_images[0, 0, 0], train_images[0, 0, 1] = 0, 255
    for prefix, images, labels in (("train", train_images, np.arange(6) % 10), ("t10k", train_images[:4],
                                                                                np.array([9, 8, 7, 6]))):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = load_dataset("fashion_mnist", tmp_path)
    _check_splits(data, (1, 28, 28), 6, 4)
    assert torch.equal(data.heldout_y, torch.tensor([9, 8, 7, 6]))
    expected = torch.as_tensor(train_images[1], dtype=torch.float32) / 255 * 2 - 1
    assert torch.allclose(data.train_x[1, 0], expected)


def test_cifar10_from_local_files(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    images[0, 0, 0, :2] = (0, 255)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(5, -1), "labels": [0, 1, 2, 3, 4]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # torchvision checks the real files' md5 sums; ours are fakes in the same layout
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: True)
    data = load_dataset("cifar10", tmp_path)
    _check_splits(data, (3, 32, 32), 25, 5)
    # channel order survives the (N, H, W, C) -> (N, C, H, W) transpose
    assert torch.allclose(data.heldout_x[2], torch.as_tensor(images[2], dtype=torch.float32) / 255 * 2 - 1)
