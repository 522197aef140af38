"""A small CNN classifier whose pooled features stand in for Inception's on tiny offline datasets.

Trained once per (dataset, split, seed, architecture) on the train split only, then cached with
``torch.save(state_dict)``; every cell of a sweep is scored with the same weights.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from bench.atomic import atomic_write
from bench.measure.quality.data import DatasetSplits

ARCH_VERSION = "cnn-v2"  # bump when the architecture or its training recipe changes: invalidates caches
FEATURES = 64


class DigitClassifier(nn.Module):
    """conv -> conv(stride 2) -> conv(stride 2) -> global average pool -> standardise (the features) -> linear.

    The last step is a BatchNorm without affine weights: in eval mode it scales every feature to zero mean
    and unit variance over the train split, so FD is in comparable units per feature and KID's polynomial
    kernel, (x.y / D + 1)^3, sees inputs of the scale it was designed for.
    """

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(64, FEATURES, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(FEATURES, affine=False),
        )
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


def feature_name(data: DatasetSplits) -> str:
    return f"{data.name}-{ARCH_VERSION}"


def cache_path(data: DatasetSplits, seed: int, epochs: int, cache_dir: Path) -> Path:
    return Path(cache_dir) / "classifiers" / f"{data.name}-{data.split}-seed{seed}-{ARCH_VERSION}-e{epochs}.pt"


def load_or_train_classifier(data: DatasetSplits, seed: int, epochs: int, cache_dir: Path,
                             device: str | torch.device = "cpu") -> DigitClassifier:
    """The cached classifier if there is one, else train it (on CPU, seeded) and cache it."""
    path = cache_path(data, seed, epochs, cache_dir)
    if path.exists():
        model = DigitClassifier(data.shape[0], data.num_classes)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        model = train_classifier(data, seed, epochs)
        # Workers may train the same classifier at once: each writes a whole file, the last one stays.
        atomic_write(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return model.to(device).eval().requires_grad_(False)


def train_classifier(data: DatasetSplits, seed: int, epochs: int, batch_size: int = 64,
                     lr: float = 2e-3) -> DigitClassifier:
    """Adam on the train split; small random shifts so features do not hinge on exact pixel positions."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitClassifier(data.shape[0], data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    n = len(data.train_y)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            x = _random_shift(data.train_x[idx], generator)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), data.train_y[idx]).backward()
            optimizer.step()
    _standardise_on(model, data.train_x)
    return model.eval()


@torch.no_grad()
def _standardise_on(model: DigitClassifier, images: Tensor) -> None:
    """Set the feature BatchNorm's statistics to the exact mean and variance over ``images``."""
    model.eval()
    pooled = torch.cat([model.body[:-1](x) for x in images.split(1000)])
    norm = model.body[-1]
    norm.running_mean.copy_(pooled.mean(0))
    norm.running_var.copy_(pooled.var(0))


@torch.no_grad()
def accuracy(model: DigitClassifier, x: Tensor, y: Tensor) -> float:
    return (model(x.to(next(model.parameters()).device)).argmax(1).cpu() == y).float().mean().item()


def _random_shift(x: Tensor, generator: torch.Generator, max_shift: int = 1) -> Tensor:
    """Roll the whole batch by up to ``max_shift`` pixels in each direction (background is -1 at edges)."""
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))
