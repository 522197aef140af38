"""Distances between a set of generated images (or their features) and a set of real ones.

Each function takes two sets and returns plain numbers; ``scoring`` turns them into table rows. FD and
KID are torchmetrics' implementations fed precomputed features; the rest are short enough to be ours.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class _Precomputed(nn.Module):
    """Identity 'feature extractor': lets torchmetrics' FID / KID run on features computed elsewhere."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: Tensor) -> Tensor:
        return x


def frechet_distance(fake: Tensor, real: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets (torchmetrics, float64)."""
    _check_features(fake, real)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]))
    metric.update(real.double().cpu(), real=True)
    metric.update(fake.double().cpu(), real=False)
    return metric.compute().item()


def kernel_distance(fake: Tensor, real: Tensor, subsets: int, subset_size: int, seed: int) -> tuple[float, float]:
    """KID (cubic polynomial kernel MMD^2, unbiased) mean and std over seeded random subsets."""
    _check_features(fake, real)
    with warnings.catch_warnings():  # "will save all extracted features": that is what we want here
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets,
                                         subset_size=subset_size)
    metric.update(real.double().cpu(), real=True)
    metric.update(fake.double().cpu(), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws its subsets from the global RNG
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return mean.item(), std.item()


def precision_recall(fake: Tensor, real: Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): a point is covered by a set when it
    lies within the k-th-nearest-neighbour radius of some member of that set.

    precision: share of fake points covered by the real set (fidelity);
    recall:    share of real points covered by the fake set (diversity).
    """
    _check_features(fake, real)
    fake, real = fake.double().cpu(), real.double().cpu()
    return _coverage(fake, real, k), _coverage(real, fake, k)


def _coverage(points: Tensor, support: Tensor, k: int) -> float:
    within_support = torch.cdist(support, support)
    # k-th nearest neighbour other than the point itself: index k of the sorted row (index 0 is itself).
    radii = within_support.kthvalue(k + 1, dim=1).values
    covered = (torch.cdist(points, support) <= radii[None, :]).any(dim=1)
    return covered.double().mean().item()


def sliced_wasserstein(fake: Tensor, real: Tensor, projections: int, seed: int) -> float:
    """Sliced 1-Wasserstein distance between two equal-sized image sets, in pixel units.

    Both sets are flattened and projected on ``projections`` seeded random unit directions; for equal
    N, the 1-D W1 distance is the mean absolute difference of the sorted projections.
    """
    fake, real = fake.flatten(1).double().cpu(), real.flatten(1).double().cpu()
    _check_features(fake, real)
    if len(fake) != len(real):
        raise ValueError(f"sliced_wasserstein needs equal set sizes; got {len(fake)} and {len(real)}")
    directions = torch.randn(real.shape[1], projections, generator=torch.Generator().manual_seed(seed),
                             dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    fake_proj, real_proj = (torch.sort(x @ directions, dim=0).values for x in (fake, real))
    return (fake_proj - real_proj).abs().mean().item()


def nearest_distances(points: Tensor, support: Tensor, chunk: int = 1024) -> Tensor:
    """Euclidean pixel distance from each point to its nearest neighbour in ``support``."""
    points, support = points.flatten(1).double().cpu(), support.flatten(1).double().cpu()
    return torch.cat([torch.cdist(p, support).min(dim=1).values for p in points.split(chunk)])


def copy_threshold(real_heldout: Tensor, train: Tensor, quantile: float) -> float:
    """Distance below which a sample counts as a copy: the ``quantile`` of held-out images' distances to
    their nearest training image. Unseen real images come that close to the training set only at that
    rate, so closer generated images are more likely memorised than merely typical."""
    return torch.quantile(nearest_distances(real_heldout, train), quantile).item()


def copy_rate(samples: Tensor, train: Tensor, threshold: float) -> float:
    """Share of samples whose nearest training image is at most ``threshold`` away (exact copies: 1.0)."""
    return (nearest_distances(samples, train) <= threshold).double().mean().item()


def class_histogram_kl(fake_classes: Tensor, real_classes: Tensor, num_classes: int) -> float:
    """KL(fake || real) in nats between the histograms of predicted classes.

    Dropped or over-produced classes raise it; it is infinite when the fake set has a class the real set
    never shows (reported as such, never clipped).
    """
    p = torch.bincount(fake_classes.cpu(), minlength=num_classes).double()
    q = torch.bincount(real_classes.cpu(), minlength=num_classes).double()
    p, q = p / p.sum(), q / q.sum()
    support = p > 0
    return (p[support] * (p[support] / q[support]).log()).sum().item()


def _check_features(fake: Tensor, real: Tensor) -> None:
    if fake.dim() != 2 or real.dim() != 2 or fake.shape[1] != real.shape[1]:
        raise ValueError(f"expected two (N, D) sets with the same D; got shapes {tuple(fake.shape)} and "
                         f"{tuple(real.shape)}")
    if len(fake) < 2 or len(real) < 2:
        raise ValueError(f"need at least 2 points per set; got {len(fake)} and {len(real)}")
