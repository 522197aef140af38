"""Score a set of images against a real reference set of the same size: the rows of phase ``sample``.

Generated samples and the real floor (real images scored as if generated) go through this one
function, so the floor is measured exactly like the cells it bounds.
"""
from __future__ import annotations

import torch
from torch import Tensor

from bench.measure.quality.data import DatasetSplits
from bench.measure.quality.features import DigitClassifier, feature_name
from bench.measure.quality.metrics import (
    class_histogram_kl,
    copy_rate,
    copy_threshold,
    frechet_distance,
    kernel_distance,
    precision_recall,
    sliced_wasserstein,
)
from bench.plan.quality_presets import QualityConfig
from bench.schema import FD, KID, SAMPLE, SWD, Measurement



@torch.no_grad()
def classify(classifier: DigitClassifier, images: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """Pooled features (N, D) and predicted classes (N,), on CPU."""
    device = next(classifier.parameters()).device
    feats = torch.cat([classifier.features(x.to(device)).cpu() for x in images.split(batch)])
    return feats, classifier.head(feats.to(device)).argmax(1).cpu()


def score(images: Tensor, reference: Tensor, data: DatasetSplits, classifier: DigitClassifier,
          config: QualityConfig, seed: int) -> list[Measurement]:
    """fd, kid (+ kid_std), precision, recall, swd, copy_rate and class_kl of ``images`` against
    ``reference`` (both (N, C, H, W) in [-1, 1], equal N); copies are judged against the train split."""
    if images.shape != reference.shape:
        raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} must have the same "
                         "shape: these metrics are biased in N, so sets are compared only at equal N")
    n = len(images)
    fake_feats, fake_classes = classify(classifier, images)
    real_feats, real_classes = classify(classifier, reference)
    feat = feature_name(data)
    kid_mean, kid_std = kernel_distance(fake_feats, real_feats, config.kid_subsets, config.kid_subset_size,
                                        config.eval_seed)
    precision, recall = precision_recall(fake_feats, real_feats, config.pr_k)
    threshold = copy_threshold(reference, data.train_x, config.copy_quantile)
    kid_method = (f"torchmetrics.KernelInceptionDistance(feature={feat}, subsets={config.kid_subsets}, "
                  f"subset_size={config.kid_subset_size})")

    def row(metric: str, value: float, unit: str, method: str, message: str = "") -> Measurement:
        return Measurement(phase=SAMPLE, metric=metric, value=value, unit=unit, method=method, seed=seed, n=n,
                           message=message)

    return [
        row(FD, frechet_distance(fake_feats, real_feats), "squared_feature",
            f"torchmetrics.FrechetInceptionDistance(feature={feat})"),
        row(KID, kid_mean, "squared_mmd", kid_method),
        row("kid_std", kid_std, "squared_mmd", kid_method, "std of KID over its subsets"),
        row("precision", precision, "ratio", f"knn-precision(k={config.pr_k}, feature={feat}), Kynkaanniemi 2019"),
        row("recall", recall, "ratio", f"knn-recall(k={config.pr_k}, feature={feat}), Kynkaanniemi 2019"),
        row(SWD, sliced_wasserstein(images, reference, config.swd_projections, config.eval_seed), "pixel_value",
            f"sliced-W1(pixels in [-1,1], projections={config.swd_projections})"),
        row("copy_rate", copy_rate(images, data.train_x, threshold), "ratio",
            f"nearest-train-L2 <= q{config.copy_quantile:g} of held-out-to-train NN L2",
            f"threshold={threshold:.4f} (pixel L2 in [-1,1]); train n={len(data.train_x)}"),
        row("class_kl", class_histogram_kl(fake_classes, real_classes, data.num_classes), "nats",
            f"KL(predicted-class histogram || reference's), classifier {feat}"),
    ]
