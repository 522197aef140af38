"""The sample-quality metrics: closed forms, known extremes, and worsening under known damage."""
import pytest
import torch
from scipy import linalg
from torchvision.transforms.functional import gaussian_blur

from bench.measure.quality import load_dataset
from bench.measure.quality.features import load_or_train_classifier
from bench.measure.quality.metrics import (
    class_histogram_kl,
    copy_rate,
    copy_threshold,
    frechet_distance,
    kernel_distance,
    precision_recall,
    sliced_wasserstein,
)
from bench.measure.quality.scoring import classify, score
from bench.plan.quality_presets import QUALITY_PRESETS

CONFIG = QUALITY_PRESETS["quick"]


def _closed_form_fd(mu1, cov1, mu2, cov2):
    covmean = linalg.sqrtm(cov1.numpy() @ cov2.numpy()).real
    return ((mu1 - mu2) ** 2).sum().item() + (cov1.trace() + cov2.trace()).item() - 2 * covmean.trace()


def _gaussian(mean, cov, n, seed):
    z = torch.randn(n, len(mean), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mean + z @ torch.linalg.cholesky(cov).T


MU1, MU2 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64), torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
COV1 = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]], dtype=torch.float64)
COV2 = torch.tensor([[1.0, -0.2, 0.1], [-0.2, 3.0, 0.0], [0.1, 0.0, 1.5]], dtype=torch.float64)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = _gaussian(MU1, COV1, 500, seed=0)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, x + 1.0) == pytest.approx(3.0, rel=1e-9)  # a shift by 1 in 3 dimensions


def test_frechet_distance_matches_the_closed_form_for_two_gaussians():
    a, b = _gaussian(MU1, COV1, 200_000, seed=0), _gaussian(MU2, COV2, 200_000, seed=1)
    # exact on the fitted Gaussians (sample mean and unbiased covariance)...
    fitted = _closed_form_fd(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))
    assert frechet_distance(a, b) == pytest.approx(fitted, rel=1e-8)
    # ...and close to the population value those samples come from
    assert frechet_distance(a, b) == pytest.approx(_closed_form_fd(MU1, COV1, MU2, COV2), rel=0.02)


def test_metrics_reject_sets_of_different_widths():
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="equal set sizes"):
        sliced_wasserstein(torch.zeros(5, 3), torch.zeros(6, 3), projections=4, seed=0)


def test_precision_and_recall_of_identical_sets_are_one_and_of_far_sets_zero():
    x = _gaussian(MU1, COV1, 300, seed=0)
    assert precision_recall(x, x, k=3) == (1.0, 1.0)
    assert precision_recall(x + 100.0, x, k=3) == (0.0, 0.0)


def test_sliced_wasserstein_of_a_shift_is_the_projected_shift():
    x = torch.randn(400, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, x, projections=64, seed=0) == 0.0
    # a constant shift c along every pixel moves each projection by c * sum(direction): W1 = c * E|sum(u)|
    shifted = sliced_wasserstein(x + 0.5, x, projections=2048, seed=0)
    expected = 0.5 * (2 / torch.pi) ** 0.5  # sum(u) of a random unit vector in 16-d ~ N(0, 1), E|N(0,1)|
    assert shifted == pytest.approx(expected, rel=0.05)


def test_class_histogram_kl():
    real = torch.arange(10).repeat(10)
    assert class_histogram_kl(real, real, 10) == 0.0
    half = torch.arange(5).repeat(20)  # five of ten classes, evenly: KL = log 2
    assert class_histogram_kl(half, real, 10) == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert class_histogram_kl(torch.tensor([3]), torch.tensor([1, 2]), 10) == float("inf")


# --- on real digits, through the cached feature classifier -------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def classifier(digits, tmp_path_factory):
    return load_or_train_classifier(digits, CONFIG.classifier_seed, CONFIG.classifier_epochs,
                                    tmp_path_factory.mktemp("cache"))


def _halves(digits):
    n = CONFIG.eval_n
    return digits.heldout_x[:n], digits.heldout_x[n: 2 * n]


def _scores(images, reference, digits, classifier):
    return {row.metric: row.value for row in score(images, reference, digits, classifier, CONFIG, seed=0)}


@pytest.mark.parametrize("damage", ["blur", "noise"])
def test_scores_worsen_monotonically_with_damage(digits, classifier, damage):
    reference, real = _halves(digits)
    if damage == "blur":
        levels = [real] + [gaussian_blur(real, kernel_size=5, sigma=s) for s in (0.5, 0.8, 1.2)]
    else:
        gen = torch.Generator().manual_seed(0)
        levels = [(real + s * torch.randn(real.shape, generator=gen)).clamp(-1, 1) for s in (0.0, 0.2, 0.5, 1.0)]
    scores = [_scores(x, reference, digits, classifier) for x in levels]
    for metric in ("fd", "kid", "swd"):
        values = [s[metric] for s in scores]
        assert values == sorted(values) and values[0] < values[-1], (metric, values)
    # fidelity: heavy damage leaves fewer images on the real manifold
    assert scores[-1]["precision"] < scores[0]["precision"]


def test_dropping_modes_lowers_recall_and_raises_class_kl(digits, classifier):
    reference, real = _halves(digits)
    real_labels = digits.heldout_y[CONFIG.eval_n: 2 * CONFIG.eval_n]
    kept = real[real_labels < 5]  # half the classes
    same_size = real[: len(kept)]  # all classes, same N
    ref_feats, ref_classes = classify(classifier, reference)
    full_feats, full_classes = classify(classifier, same_size)
    kept_feats, kept_classes = classify(classifier, kept)
    _, recall_full = precision_recall(full_feats, ref_feats, CONFIG.pr_k)
    _, recall_kept = precision_recall(kept_feats, ref_feats, CONFIG.pr_k)
    assert recall_kept < recall_full - 0.2
    assert class_histogram_kl(kept_classes, ref_classes, 10) > class_histogram_kl(full_classes, ref_classes, 10) + 0.3
    assert frechet_distance(kept_feats, ref_feats) > frechet_distance(full_feats, ref_feats)


def test_copy_rate_is_one_for_copies_and_near_the_quantile_for_real_images(digits):
    reference, real = _halves(digits)
    threshold = copy_threshold(reference, digits.train_x, CONFIG.copy_quantile)
    assert threshold > 0
    assert copy_rate(digits.train_x[:250], digits.train_x, threshold) == 1.0
    # unseen real images cross the threshold about as often as the quantile says
    assert copy_rate(real, digits.train_x, threshold) <= 5 * CONFIG.copy_quantile


def test_kid_is_seeded(digits, classifier):
    reference, real = _halves(digits)
    a, b = classify(classifier, real)[0], classify(classifier, reference)[0]
    assert kernel_distance(a, b, 20, 100, seed=0) == kernel_distance(a, b, 20, 100, seed=0)
    assert kernel_distance(a, b, 20, 100, seed=0) != kernel_distance(a, b, 20, 100, seed=1)
